//! [`ConnectionString`]: `AZURE_STORAGE_CONNECTION_STRING`, `key=value` pairs split by `;`.

use crate::Secret;

/// What a storage connection string holds. Keys are matched without regard to case; values
/// keep theirs (an account key is base64, and may end in `=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionString {
    /// `AccountName`.
    pub account: Option<String>,
    /// `AccountKey`.
    pub key: Option<Secret>,
    /// `SharedAccessSignature`, without a leading `?`.
    pub sas: Option<Secret>,
    /// `BlobEndpoint`: the account's blob service (`http://127.0.0.1:10000/devstoreaccount1`
    /// for Azurite).
    pub blob_endpoint: Option<String>,
    /// `DefaultEndpointsProtocol`: `https` unless it says `http`.
    pub protocol: Option<String>,
    /// `EndpointSuffix`: `core.windows.net` unless another cloud's.
    pub suffix: Option<String>,
}

impl ConnectionString {
    /// Parses `text`. Unknown keys are ignored; a pair without `=` is an error naming its
    /// position, never its text (it may be a key).
    ///
    /// # Errors
    ///
    /// The 1-based position of a part that is no `key=value` pair.
    pub fn parse(text: &str) -> Result<Self, usize> {
        let mut parsed = ConnectionString::default();
        for (at, part) in text.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(at + 1);
            };
            let value = value.trim().to_owned();
            match key.trim().to_ascii_lowercase().as_str() {
                "accountname" => parsed.account = Some(value),
                "accountkey" => parsed.key = Some(Secret::new(value)),
                "sharedaccesssignature" => {
                    parsed.sas = Some(Secret::new(value.trim_start_matches('?').to_owned()));
                }
                "blobendpoint" => parsed.blob_endpoint = Some(value),
                "defaultendpointsprotocol" => parsed.protocol = Some(value),
                "endpointsuffix" => parsed.suffix = Some(value),
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// The account's blob endpoint: `BlobEndpoint`, else one made of the protocol, the account
    /// and the suffix when the protocol or suffix is not Azure's default; `None` for Azure's
    /// own.
    pub fn endpoint(&self) -> Option<String> {
        if let Some(e) = &self.blob_endpoint {
            return Some(e.trim_end_matches('/').to_owned());
        }
        let protocol = self.protocol.as_deref().unwrap_or("https");
        let suffix = self.suffix.as_deref().unwrap_or("core.windows.net");
        let account = self.account.as_deref()?;
        (protocol != "https" || suffix != "core.windows.net")
            .then(|| format!("{protocol}://{account}.blob.{suffix}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azurite_s_connection_string_parses() {
        let text = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";
        let c = ConnectionString::parse(text).expect("parses");
        assert_eq!(c.account.as_deref(), Some("devstoreaccount1"));
        assert!(
            c.key
                .as_ref()
                .is_some_and(|k| k.expose().ends_with("GMGw=="))
        );
        assert_eq!(
            c.endpoint().as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        assert!(!format!("{c:?}").contains("Eby8"), "{c:?}");
    }

    #[test]
    fn keys_ignore_case_and_the_sas_loses_its_question_mark() {
        let c = ConnectionString::parse(
            " accountname = acct ; SharedAccessSignature=?sv=1&sig=x ; Unknown=1",
        )
        .expect("parses");
        assert_eq!(c.account.as_deref(), Some("acct"));
        assert_eq!(c.sas.as_ref().map(Secret::expose), Some("sv=1&sig=x"));
        assert_eq!(c.endpoint(), None, "Azure's own");
        let c =
            ConnectionString::parse("AccountName=a;DefaultEndpointsProtocol=http").expect("parses");
        assert_eq!(
            c.endpoint().as_deref(),
            Some("http://a.blob.core.windows.net")
        );
        assert_eq!(
            ConnectionString::parse("AccountName=a;secretwithoutequals"),
            Err(2)
        );
    }
}
