//! What a file named like a model format holds instead. A `model.gguf` that is a sign-in
//! page, or a Git LFS pointer cloned without its object, is a download that went wrong without
//! failing; the warning names which from the first bytes alone, so the user knows what to
//! fetch again.

/// What the first bytes of a file look like, completing "it …".
pub fn looks_like(head: &[u8]) -> &'static str {
    let text = head
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(head)
        .trim_ascii_start();
    let lower: Vec<u8> = text.iter().take(16).map(u8::to_ascii_lowercase).collect();
    if head.is_empty() {
        "is empty"
    } else if lower.starts_with(b"<!doctype html")
        || lower.starts_with(b"<html")
        || lower.starts_with(b"<head")
    {
        "looks like HTML (a web page saved under the model's name?)"
    } else if text.starts_with(b"<") {
        "looks like XML"
    } else if text.starts_with(b"version https://git-lfs") {
        "looks like a Git LFS pointer, not the file it points to"
    } else if text.starts_with(b"{") || text.starts_with(b"[") {
        "looks like JSON"
    } else if head.starts_with(b"PK\x03\x04") {
        "looks like a ZIP archive (a PyTorch checkpoint?)"
    } else if head.len() > 1 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        "looks like a Python pickle"
    } else if head.starts_with(b"\x1f\x8b") {
        "looks like gzip-compressed data"
    } else if std::str::from_utf8(head)
        .is_ok_and(|s| s.chars().all(|c| !c.is_control() || c.is_whitespace()))
    {
        "looks like text"
    } else {
        "holds bytes in no format this build knows"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_file_looks_like() {
        assert_eq!(looks_like(b""), "is empty");
        assert!(looks_like(b"  <HTML>").contains("HTML"));
        assert!(
            looks_like(b"version https://git-lfs.example/spec/v1\noid sha256:").contains("LFS")
        );
        assert!(looks_like(b"PK\x03\x04rest").contains("ZIP"));
        assert!(looks_like(b"\x80\x02}q").contains("pickle"));
        assert_eq!(looks_like(b"plain words\n"), "looks like text");
        assert!(looks_like(&[0, 1, 2, 255]).contains("no format"));
    }
}
