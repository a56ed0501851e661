//! `--include` / `--exclude` patterns, matched as the Hugging Face tools match them (`fnmatch`:
//! `*` matches any run of characters, `/` included; `?` matches one character).

/// Whether `name` matches the shell-style `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether `name` passes the filters: it matches one of `include` (or `include` is empty),
/// and none of `exclude`.
pub fn selected(name: &str, include: &[String], exclude: &[String]) -> bool {
    (include.is_empty() || include.iter().any(|p| matches(p, name)))
        && !exclude.iter().any(|p| matches(p, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_semantics() {
        assert!(matches("*.gguf", "model.Q4_K_M.gguf"));
        assert!(
            matches("*Q4_K_M*.gguf", "sub/model.Q4_K_M.gguf"),
            "`*` crosses `/`"
        );
        assert!(matches(
            "model-?????-of-00002.safetensors",
            "model-00001-of-00002.safetensors"
        ));
        assert!(matches("*", ""));
        assert!(!matches("*.gguf", "model.safetensors"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn include_then_exclude() {
        let inc = vec!["*.safetensors".to_owned(), "*.json".to_owned()];
        let exc = vec!["onnx/*".to_owned()];
        assert!(selected("config.json", &inc, &exc));
        assert!(!selected("onnx/model.json", &inc, &exc));
        assert!(!selected("README.md", &inc, &exc));
        assert!(selected("README.md", &[], &[]));
    }
}
