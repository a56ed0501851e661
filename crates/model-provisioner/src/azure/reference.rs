//! What an `az://` reference names: an account's container and a blob or a folder in it, on
//! Azure or on another endpoint (`az+http://host:port/account/…`, Azurite's path style), and
//! the SAS token its query may carry.

use catalog_core::{ModelRef, OtherRef, ParseRefError};
use mp_credentials::Secret;

/// The host suffix of Azure's own blob endpoints.
pub(super) const AZURE_SUFFIX: &str = ".blob.core.windows.net";

/// What every refusal suggests.
const FORMS: &str = "write `az://account/container/path/to/blob`, `az://account/container/folder/` or `https://account.blob.core.windows.net/container/path`";

/// An `az://` reference, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BlobRef {
    /// `scheme://host[:port]` of an endpoint that is not Azure's own.
    pub(super) endpoint: Option<String>,
    pub(super) account: String,
    pub(super) container: String,
    /// The blob's name, or the folder's prefix (empty, or ending with `/`).
    pub(super) path: String,
    /// The SAS token of the query.
    pub(super) sas: Option<Secret>,
}

impl BlobRef {
    /// Whether it names a folder: every blob under the prefix.
    pub(super) fn is_folder(&self) -> bool {
        self.path.is_empty() || self.path.ends_with('/')
    }

    /// The reference, without its query: its id.
    pub(super) fn text(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("az+{e}/{}/{}/{}", self.account, self.container, self.path),
            None => format!("az://{}/{}/{}", self.account, self.container, self.path),
        }
    }

    /// As a reference of the `az` schemes, without its query.
    pub(super) fn to_ref(&self) -> ModelRef {
        let text = self.text();
        let (scheme, rest) = text.split_once(':').expect("the text has a scheme");
        ModelRef::Other(OtherRef::new(scheme, rest).expect("a reference made from a valid one"))
    }
}

/// Reads `reference` (`az://`, `az+http://`, `az+https://`), refusing what names no blob or
/// folder, in this source's words.
pub(super) fn read(reference: &OtherRef) -> Result<BlobRef, ParseRefError> {
    let text = reference.to_string();
    let refuse = |reason: String| Err(ParseRefError::new(&text, reason).with_hint(FORMS));
    let Some(rest) = reference.rest().strip_prefix("//") else {
        return refuse(format!(
            "an `{}:` reference starts with `//`",
            reference.scheme()
        ));
    };
    let (rest, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let sas = match query {
        None => None,
        Some(q) => match mp_credentials::azure::sas_query(q) {
            Some(sas) => Some(sas),
            None => {
                return refuse(
                    "the query of an `az://` reference can only be a SAS token (with `sig=`)"
                        .into(),
                );
            }
        },
    };
    let (endpoint, rest) = match reference.scheme() {
        "az" => (None, rest),
        scheme => {
            let protocol = scheme.strip_prefix("az+").unwrap_or(scheme);
            let (host, rest) = rest.split_once('/').unwrap_or((rest, ""));
            if host.is_empty() || host.contains('@') {
                return refuse(format!("an `{scheme}:` reference names a host first"));
            }
            (
                Some(format!("{protocol}://{}", host.to_ascii_lowercase())),
                rest,
            )
        }
    };
    let mut parts = rest.splitn(3, '/');
    let account = parts.next().unwrap_or_default();
    let container = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    if account.is_empty() || container.is_empty() {
        return refuse("an `az://` reference needs at least `account/container`".into());
    }
    if !(3..=24).contains(&account.len())
        || !account
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return refuse(format!(
            "`{account}` is no storage account name (3 to 24 lowercase letters and digits)"
        ));
    }
    let container_ok = (3..=63).contains(&container.len())
        && container
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !container.starts_with('-')
        && !container.ends_with('-')
        && !container.contains("--");
    if !container_ok {
        return refuse(format!(
            "`{container}` is no container name (3 to 63 lowercase letters, digits and single hyphens)"
        ));
    }
    let body = path.strip_suffix('/').unwrap_or(path);
    if !body.is_empty() {
        for segment in body.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." || segment.contains('\\') {
                return refuse(format!(
                    "`{path}` has an empty, `.`, `..` or backslashed segment"
                ));
            }
        }
    }
    Ok(BlobRef {
        endpoint,
        account: account.to_owned(),
        container: container.to_owned(),
        path: path.to_owned(),
        sas,
    })
}

/// The `az://` reference an Azure blob's `https://` URL means, its query kept.
pub(super) fn claim(reference: &ModelRef) -> Option<ModelRef> {
    let ModelRef::Http(http) = reference else {
        return None;
    };
    let url = http.url();
    let account = url.host_str()?.strip_suffix(AZURE_SUFFIX)?;
    if url.scheme() != "https" || url.port().is_some() || !url.username().is_empty() {
        return None;
    }
    let path = percent_decode(url.path().trim_start_matches('/'))?;
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    OtherRef::new("az", &format!("//{account}/{path}{query}"))
        .ok()
        .map(ModelRef::Other)
}

/// `%XX` escapes decoded; `None` when that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BlobRef, ParseRefError> {
        match ModelRef::parse_with(text, &["az", "az+http", "az+https"])? {
            ModelRef::Other(o) => read(&o),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn blobs_folders_and_endpoints_read_as_written() -> Result<(), ParseRefError> {
        let blob = parse("az://acct/models/dir/w.gguf")?;
        assert_eq!(
            (
                blob.account.as_str(),
                blob.container.as_str(),
                blob.path.as_str()
            ),
            ("acct", "models", "dir/w.gguf")
        );
        assert!(!blob.is_folder());
        assert_eq!(blob.text(), "az://acct/models/dir/w.gguf");
        assert!(parse("az://acct/models/dir/")?.is_folder());
        assert!(parse("az://acct/models")?.is_folder());
        let local = parse("az+http://127.0.0.1:10000/devstoreaccount1/models/w.gguf")?;
        assert_eq!(local.endpoint.as_deref(), Some("http://127.0.0.1:10000"));
        assert_eq!(
            local.text(),
            "az+http://127.0.0.1:10000/devstoreaccount1/models/w.gguf"
        );
        assert_eq!(local.to_ref().to_string(), local.text());
        let signed = parse("az://acct/models/w.gguf?sv=2020-12-06&sp=r&sig=c2ln")?;
        assert_eq!(
            signed.sas.as_ref().map(Secret::expose),
            Some("sv=2020-12-06&sp=r&sig=c2ln")
        );
        assert_eq!(signed.text(), "az://acct/models/w.gguf");
        Ok(())
    }

    #[test]
    fn malformed_references_are_refused_in_this_source_s_words() {
        for (text, reason) in [
            ("az://acct", "needs at least `account/container`"),
            ("az://Acct/models/x", "no storage account name"),
            ("az://ab/models/x", "no storage account name"),
            ("az://acct/Models/x", "no container name"),
            ("az://acct/a--b/x", "no container name"),
            ("az://acct/models/a/../x", "`..`"),
            ("az://acct/models/a//x", "empty"),
            ("az://acct/models/x?sv=1", "SAS token"),
            ("az:acct/models/x", "starts with `//`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.reason().contains(reason), "{text}: {err}");
            assert!(
                err.hint()
                    .is_some_and(|h| h.contains("az://account/container")),
                "{text}"
            );
        }
        // The SAS never shows in a refusal.
        let err = parse("az://Acct/models/x?sv=1&sig=SECRET").unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn an_azure_https_url_is_the_az_reference_it_means() {
        let claimed = |text: &str| claim(&text.parse().expect("a URL"));
        assert_eq!(
            claimed("https://acct.blob.core.windows.net/models/dir%20a/w.gguf?sv=1&sig=x")
                .map(|r| r.to_string()),
            Some("az://acct/models/dir a/w.gguf?sv=1&sig=x".to_owned())
        );
        assert_eq!(
            claimed("https://acct.blob.core.windows.net/models/w.gguf").map(|r| r.redacted()),
            Some("az://acct/models/w.gguf".to_owned())
        );
        assert!(claimed("https://example.com/models/w.gguf").is_none());
        assert!(claimed("http://acct.blob.core.windows.net/models/w.gguf").is_none());
    }
}
