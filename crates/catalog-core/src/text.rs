//! Text from outside (a reference, a remote name, a header) made fit for a message.

/// `s` made safe to print: control characters escaped, long input shortened.
pub fn printable(s: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
