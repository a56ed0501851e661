//! `--include` / `--exclude` patterns, matched as the Hugging Face tools match them (`fnmatch`:
//! `*` matches any run of characters, `/` included; `?` matches one character; `[seq]` one
//! character of `seq`, `[!seq]` one not in it, with ranges such as `a-z`; a `[` without its
//! `]` is itself).

/// One element of a pattern.
#[derive(Debug)]
enum Token {
    /// This character.
    Char(char),
    /// `?`: any one character.
    Any,
    /// `*`: any run of characters.
    Star,
    /// `[seq]` or `[!seq]`: one character in (or not in) these inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Char(p) => *p == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != *negated
            }
        }
    }
}

fn tokens(pattern: &str) -> Vec<Token> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => out.push(Token::Star),
            '?' => out.push(Token::Any),
            '[' => {
                // As `fnmatch`: `!` negates, and a `]` first in the set is a member.
                let mut j = i + 1;
                let negated = p.get(j) == Some(&'!');
                if negated {
                    j += 1;
                }
                let start = j;
                if p.get(j) == Some(&']') {
                    j += 1;
                }
                while j < p.len() && p[j] != ']' {
                    j += 1;
                }
                if j >= p.len() {
                    out.push(Token::Char('['));
                } else {
                    let set = &p[start..j];
                    let mut ranges = Vec::new();
                    let mut k = 0;
                    while k < set.len() {
                        if k + 2 < set.len() && set[k + 1] == '-' {
                            ranges.push((set[k], set[k + 2]));
                            k += 3;
                        } else {
                            ranges.push((set[k], set[k]));
                            k += 1;
                        }
                    }
                    out.push(Token::Class { negated, ranges });
                    i = j;
                }
            }
            c => out.push(Token::Char(c)),
        }
        i += 1;
    }
    out
}

/// Whether `name` matches the shell-style `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<Token>, Vec<char>) = (tokens(pattern), name.chars().collect());
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi].accepts(n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && matches!(p[pi], Token::Star) {
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
    p[pi..].iter().all(|t| matches!(t, Token::Star))
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
    fn character_classes_as_fnmatch_has_them() {
        assert!(matches("model-0000[12]-of-*", "model-00002-of-00002"));
        assert!(!matches("model-0000[12]-of-*", "model-00003-of-00003"));
        assert!(matches("[a-c]x", "bx") && !matches("[a-c]x", "dx"));
        assert!(matches("[!a-c]x", "dx") && !matches("[!a-c]x", "ax"));
        assert!(matches("a[*]b", "a*b") && !matches("a[*]b", "aXb"));
        assert!(matches("a[[]b", "a[b"));
        assert!(matches("[]]", "]"));
        assert!(matches("a[b", "a[b"), "an unclosed `[` is itself");
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
