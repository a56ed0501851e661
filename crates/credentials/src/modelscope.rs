//! ModelScope's saved login: the session its own client keeps after `modelscope login`, read
//! as data and never executed.
//!
//! ```text
//! $MODELSCOPE_HOME (else ~/.modelscope)/
//! └── credentials/
//!     └── cookies      a Python pickle of a requests cookie jar, at most 1 MiB read:
//!                      jar._cookies[<domain>][<path>]["m_session_id"] is a Cookie whose
//!                      value is the session (or the access token itself), with its domain,
//!                      whether it is for https only, and its expiry (seconds, or none)
//! ```
//!
//! ModelScope's client (`modelscope_hub`'s `HubConfig`) takes an explicit token first, then
//! `MODELSCOPE_API_TOKEN`, then this file; a file it cannot unpickle, or whose `m_session_id`
//! has expired, means "not logged in". The same here, with two rules of cookies it does not
//! apply: the session goes only to a host the cookie's domain matches, and a cookie for https
//! only never goes over http. The pickle is parsed by a reader of its opcodes that builds
//! plain values (`pickle.rs`): a class is a name, never looked up, and nothing is called.

mod pickle;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::Secret;

/// The most of the cookies file that is read: a jar of a few cookies weighs a few KiB.
pub const COOKIES_LIMIT: u64 = 1 << 20;

/// The cookie that holds the session.
const SESSION_COOKIE: &str = "m_session_id";

/// `$MODELSCOPE_HOME` (a blank one is unset), else `~/.modelscope`: the client's
/// configuration directory.
pub fn config_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(home) = env("MODELSCOPE_HOME").filter(|h| !h.trim().is_empty()) {
        return Some(home.into());
    }
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".modelscope"))
}

/// Why there is no saved login to send: a debug note, never an error, as ModelScope's client
/// treats each of these as "not logged in".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoSavedLogin {
    /// Neither `MODELSCOPE_HOME` nor `HOME` is set.
    NoHome,
    /// The cookies file is not there, or could not be read.
    Unreadable(PathBuf, String),
    /// The cookies file is larger than [`COOKIES_LIMIT`].
    TooLarge(PathBuf),
    /// The cookies file is not a pickle this reader takes.
    NotAPickle(String),
    /// The jar holds no `m_session_id` cookie for the endpoint's host.
    NoSession(String),
    /// The one for the endpoint's host has expired.
    Expired(String),
    /// The one for the endpoint's host is for https only, and the endpoint is not.
    HttpsOnly(String),
}

impl fmt::Display for NoSavedLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoSavedLogin::NoHome => f.write_str("neither `MODELSCOPE_HOME` nor `HOME` is set"),
            NoSavedLogin::Unreadable(path, why) => {
                write!(f, "`{}` was not read: {why}", path.display())
            }
            NoSavedLogin::TooLarge(path) => write!(
                f,
                "`{}` is larger than {COOKIES_LIMIT} bytes",
                path.display()
            ),
            NoSavedLogin::NotAPickle(why) => write!(f, "the cookies file does not parse: {why}"),
            NoSavedLogin::NoSession(host) => {
                write!(f, "no `{SESSION_COOKIE}` cookie for `{host}`")
            }
            NoSavedLogin::Expired(host) => {
                write!(f, "the `{SESSION_COOKIE}` cookie for `{host}` has expired")
            }
            NoSavedLogin::HttpsOnly(host) => write!(
                f,
                "the `{SESSION_COOKIE}` cookie for `{host}` is for https only"
            ),
        }
    }
}

/// The session saved by ModelScope's client for `host`, reached over https when `https`:
/// from `<config_dir>/credentials/cookies`, unexpired at `now` (seconds since the epoch).
///
/// # Errors
///
/// Why there is none ([`NoSavedLogin`]): to log at debug level, never to fail on.
pub fn saved_session(
    env: &dyn Fn(&str) -> Option<String>,
    host: &str,
    https: bool,
    now: u64,
) -> Result<Secret, NoSavedLogin> {
    let path = config_dir(env)
        .ok_or(NoSavedLogin::NoHome)?
        .join("credentials")
        .join("cookies");
    let unreadable = |e: std::io::Error| NoSavedLogin::Unreadable(path.clone(), e.to_string());
    let file = std::fs::File::open(&path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(COOKIES_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > COOKIES_LIMIT {
        return Err(NoSavedLogin::TooLarge(path));
    }
    session_in(&bytes, host, https, now)
}

/// The session in the pickled cookie jar `bytes` for `host` (see [`saved_session`]). The
/// first of the jar's `m_session_id` cookies whose domain matches `host` is the one: it is
/// used unless it has expired, or is for https only and `https` is false.
///
/// # Errors
///
/// Why there is none ([`NoSavedLogin`]).
pub fn session_in(bytes: &[u8], host: &str, https: bool, now: u64) -> Result<Secret, NoSavedLogin> {
    let jar = pickle::read(bytes).map_err(|e| NoSavedLogin::NotAPickle(e.to_string()))?;
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let no_session = || NoSavedLogin::NoSession(host.clone());
    let cookies = jar.get(jar.root(), "_cookies").ok_or_else(no_session)?;
    // _cookies[domain][path][name], each level a dict.
    let found = jar
        .entries(cookies)
        .iter()
        .flat_map(|(_, paths)| jar.entries(*paths))
        .flat_map(|(_, names)| jar.entries(*names))
        .filter(|(name, _)| jar.str(*name) == Some(SESSION_COOKIE))
        .map(|(_, cookie)| Cookie::read(&jar, *cookie))
        .find(|cookie| cookie.as_ref().is_some_and(|c| c.matches(&host)))
        .flatten()
        .ok_or_else(no_session)?;
    if found.expires.is_some_and(|at| at <= now) {
        return Err(NoSavedLogin::Expired(host));
    }
    if found.secure && !https {
        return Err(NoSavedLogin::HttpsOnly(host));
    }
    Ok(Secret::new(found.value))
}

/// What of an `http.cookiejar.Cookie` decides where it goes.
struct Cookie {
    value: String,
    /// Lowercase, without a leading dot.
    domain: String,
    /// The domain was named by the server (or begins with a dot): subdomains match too.
    domain_wide: bool,
    secure: bool,
    /// Seconds since the epoch; `None` for a cookie of the session, which never expires.
    expires: Option<u64>,
}

impl Cookie {
    fn read(jar: &pickle::Pickle, cookie: pickle::Id) -> Option<Cookie> {
        use pickle::Node;
        let field = |name| jar.get(cookie, name).map(|id| jar.node(id));
        let flag = |name| matches!(field(name), Some(Node::Bool(true) | Node::Int(1)));
        let domain = jar.str(jar.get(cookie, "domain")?)?.to_ascii_lowercase();
        let expires = match field("expires")? {
            Node::None => None,
            // A negative expiry is long past.
            Node::Int(at) => Some(u64::try_from(*at).unwrap_or(0)),
            // A float, or a number wider than 64 bits: not an expiry we can trust.
            _ => Some(0),
        };
        Some(Cookie {
            value: jar.str(jar.get(cookie, "value")?)?.to_owned(),
            domain_wide: flag("domain_specified") || domain.starts_with('.'),
            domain: domain.trim_start_matches('.').to_owned(),
            secure: flag("secure"),
            expires,
        })
    }

    /// Whether the cookie goes to `host` (lowercase): the host is its domain, or, for a
    /// domain the server named, a host name under it (never an IP address).
    fn matches(&self, host: &str) -> bool {
        if self.domain.is_empty() {
            return false;
        }
        host == self.domain
            || (self.domain_wide
                && host.parse::<std::net::IpAddr>().is_err()
                && host
                    .strip_suffix(self.domain.as_str())
                    .is_some_and(|rest| rest.ends_with('.')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `HubConfig(endpoint="https://modelscope.cn").save_token("ms-saved-token")`, as
    /// modelscope-hub 0.5.1 writes it (protocol 4, expiring at `1_799_044_123`).
    pub(super) const SAVED_JAR: &[u8] = include_bytes!("modelscope/testdata/saved_token.pickle");

    /// A jar pickled with protocol 2 (`GLOBAL`, `BINPUT`): a session of `ms.internal` as its
    /// login's `Set-Cookie` leaves it (no domain named, no expiry), `lang` beside it, an
    /// expired one of `.modelscope.cn`, and one of `secure.internal` for https only.
    const LOGIN_JAR: &[u8] = include_bytes!("modelscope/testdata/login_session_p2.pickle");

    const NOW: u64 = 1_790_000_000;

    fn session(bytes: &[u8], host: &str, https: bool, now: u64) -> Result<String, NoSavedLogin> {
        session_in(bytes, host, https, now).map(|s| s.expose().to_owned())
    }

    #[test]
    fn the_sdks_saved_token_goes_to_its_host_and_the_hosts_under_it_until_it_expires() {
        assert_eq!(
            session(SAVED_JAR, "modelscope.cn", true, NOW).as_deref(),
            Ok("ms-saved-token")
        );
        // save_token names the domain, so www.modelscope.cn takes it, as a browser would.
        assert_eq!(
            session(SAVED_JAR, "WWW.modelscope.cn.", true, NOW).as_deref(),
            Ok("ms-saved-token")
        );
        for other in [
            "ms.internal",
            "evilmodelscope.cn",
            "modelscope.cn.evil",
            "cn",
        ] {
            assert_eq!(
                session(SAVED_JAR, other, true, NOW),
                Err(NoSavedLogin::NoSession(other.to_owned()))
            );
        }
        assert_eq!(
            session(SAVED_JAR, "modelscope.cn", true, 1_799_044_123),
            Err(NoSavedLogin::Expired("modelscope.cn".to_owned()))
        );
    }

    #[test]
    fn a_login_session_goes_to_its_own_host_only() {
        assert_eq!(
            session(LOGIN_JAR, "ms.internal", false, NOW).as_deref(),
            Ok("ms-internal-session")
        );
        // No domain named by the server: not for the hosts under it.
        assert_eq!(
            session(LOGIN_JAR, "a.ms.internal", false, NOW),
            Err(NoSavedLogin::NoSession("a.ms.internal".to_owned()))
        );
        assert_eq!(
            session(LOGIN_JAR, "www.modelscope.cn", true, NOW),
            Err(NoSavedLogin::Expired("www.modelscope.cn".to_owned()))
        );
        assert_eq!(
            session(LOGIN_JAR, "secure.internal", false, NOW),
            Err(NoSavedLogin::HttpsOnly("secure.internal".to_owned()))
        );
        assert_eq!(
            session(LOGIN_JAR, "secure.internal", true, NOW).as_deref(),
            Ok("ms-secure-session")
        );
    }

    #[test]
    fn an_ip_address_takes_only_a_cookie_of_itself() {
        let wide = Cookie {
            value: String::new(),
            domain: "0.0.1".to_owned(),
            domain_wide: true,
            secure: false,
            expires: None,
        };
        assert!(!wide.matches("127.0.0.1"));
        assert!(wide.matches("0.0.1"));
    }

    #[test]
    fn garbage_a_cut_jar_and_a_jar_of_other_things_are_no_login() {
        for bytes in [
            b"".as_slice(),
            b"not a pickle at all",
            &SAVED_JAR[..SAVED_JAR.len() / 2],
            // pickle.dumps({"_cookies": [1, 2]}), and of a jar whose cookie has no value.
            b"\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x08_cookies\x94]\x94(K\x01K\x02es.",
            b"\x80\x02}q\x00X\x08\x00\x00\x00_cookiesq\x01}q\x02X\x02\x00\x00\x00a.q\x03}q\x04X\x01\x00\x00\x00/q\x05}q\x06X\x0c\x00\x00\x00m_session_idq\x07}q\x08X\x06\x00\x00\x00domainq\tX\x02\x00\x00\x00a.q\nsssss.",
        ] {
            let got = session(bytes, "a.", false, NOW);
            assert!(
                matches!(
                    got,
                    Err(NoSavedLogin::NotAPickle(_) | NoSavedLogin::NoSession(_))
                ),
                "{bytes:?}: {got:?}"
            );
        }
    }

    #[test]
    fn the_file_is_found_under_modelscope_home_else_home_and_a_huge_one_is_not_read()
    -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_str().expect("utf-8").to_owned();
        let home = move |name: &str| (name == "HOME").then(|| root.clone());
        assert_eq!(config_dir(&home), Some(dir.path().join(".modelscope")));
        let creds = dir.path().join(".modelscope").join("credentials");
        assert!(matches!(
            saved_session(&home, "modelscope.cn", true, NOW),
            Err(NoSavedLogin::Unreadable(..))
        ));
        std::fs::create_dir_all(&creds)?;
        std::fs::write(creds.join("cookies"), SAVED_JAR)?;
        assert_eq!(
            saved_session(&home, "modelscope.cn", true, NOW).map(|s| s.expose().to_owned()),
            Ok("ms-saved-token".to_owned())
        );
        // The same jar padded past the limit (a pickle ends at STOP; Python reads no further).
        let mut huge = SAVED_JAR.to_vec();
        huge.resize(usize::try_from(COOKIES_LIMIT).expect("small") + 1, 0);
        std::fs::write(creds.join("cookies"), &huge)?;
        assert_eq!(
            saved_session(&home, "modelscope.cn", true, NOW).map(|s| s.expose().to_owned()),
            Err(NoSavedLogin::TooLarge(creds.join("cookies")))
        );
        // MODELSCOPE_HOME stands first; a blank one is unset.
        let other = dir.path().join("other");
        let ms_home = other.to_str().expect("utf-8").to_owned();
        let both = move |name: &str| match name {
            "MODELSCOPE_HOME" => Some(ms_home.clone()),
            "HOME" => Some("/nowhere".to_owned()),
            _ => None,
        };
        assert_eq!(config_dir(&both), Some(other));
        let blank = |name: &str| (name == "MODELSCOPE_HOME").then(|| " ".to_owned());
        assert_eq!(config_dir(&blank), None);
        assert_eq!(
            saved_session(&blank, "modelscope.cn", true, NOW).map(|s| s.expose().to_owned()),
            Err(NoSavedLogin::NoHome)
        );
        Ok(())
    }
}
