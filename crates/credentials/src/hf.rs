//! The Hugging Face token: from the environment or the user's token file, never logged.

use std::fmt;
use std::path::{Path, PathBuf};

/// A bearer token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub fn hf_home(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(home) = env("HF_HOME") {
        return Some(home.into());
    }
    if let Some(xdg) = env("XDG_CACHE_HOME") {
        return Some(Path::new(&xdg).join("huggingface"));
    }
    env("HOME").map(|h| Path::new(&h).join(".cache").join("huggingface"))
}

/// The token to send: `$HF_TOKEN` (or the older `$HUGGING_FACE_HUB_TOKEN`), else the file
/// `$HF_TOKEN_PATH`, else `<HF_HOME>/token`, as the Hugging Face tools look for it.
pub fn find_token(env: &dyn Fn(&str) -> Option<String>) -> Option<Token> {
    let clean = |s: String| {
        Some(s.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(Token)
    };
    if let Some(t) = env("HF_TOKEN")
        .or_else(|| env("HUGGING_FACE_HUB_TOKEN"))
        .and_then(clean)
    {
        return Some(t);
    }
    let file = env("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .or_else(|| hf_home(env).map(|h| h.join("token")))?;
    std::fs::read_to_string(file).ok().and_then(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment_first_then_token_file() -> std::io::Result<()> {
        assert_eq!(
            find_token(&env_of(&[("HF_TOKEN", " hf_abc \n")])).map(|t| t.0),
            Some("hf_abc".into())
        );
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("token"), "hf_file\n")?;
        let home = dir.path().to_str().expect("utf-8").to_owned();
        let env = move |name: &str| (name == "HF_HOME").then(|| home.clone());
        assert_eq!(find_token(&env).map(|t| t.0), Some("hf_file".into()));
        assert_eq!(find_token(&env_of(&[])), None);
        Ok(())
    }

    #[test]
    fn debug_never_shows_the_token() {
        assert_eq!(
            format!("{:?}", Token("hf_secret".into())),
            "Token(<redacted>)"
        );
    }
}
