//! Objects as a [listing](crate::pipeline::Listing) for the pipeline, published as
//! `models/gs/<endpoint>/<bucket>/<object>/<version>/`. Each object the pipeline downloads comes
//! from an [`ObjectSource`]: its bytes pinned to the generation listed, with the token held at
//! each request.

use std::sync::Arc;

use catalog_core::{Digest, SafeRelPath};
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};

use super::Gcs;
use super::reference::GsRef;
use super::session::{Object, Session, encode};
use crate::error::Result;
use crate::pipeline::{Claim, ListedFile, Listing, Revision, Stated};
use crate::request::FetchRequest;
use mp_transfer::{BoxFuture, Checksum, RequestSource};

/// One object to place: where it goes, and what the listing says of it.
pub(super) struct Placed {
    pub(super) rel: SafeRelPath,
    pub(super) object: Object,
    /// The sha256 the folder's manifest states for it.
    pub(super) sha256: Option<Digest>,
}

impl Gcs {
    /// The listing of `objects` of `gs`, published as
    /// `models/gs/<endpoint>/<bucket>/<object>/<version>/`: the directory of a folder, or the
    /// one object inside it.
    pub(super) fn listing<'s>(
        &'s self,
        req: &FetchRequest<'_>,
        gs: &GsRef,
        session: &Arc<Session>,
        objects: Vec<Placed>,
        claim: Option<Claim>,
    ) -> Result<Listing<'s>> {
        let mut dest = req
            .layout
            .models_dir()
            .join("gs")
            .join(session.endpoint.replace("://", "/"))
            .join(&gs.bucket);
        for segment in gs.object.split('/').filter(|s| !s.is_empty()) {
            dest.push(segment);
        }
        dest.push(version_of(&objects));
        let (include, exclude) = if gs.is_prefix() {
            (self.include.clone(), self.exclude.clone())
        } else {
            (Vec::new(), Vec::new())
        };
        let revision = match &objects[..] {
            [one] if !gs.is_prefix() => one
                .object
                .generation
                .clone()
                .map_or(Revision::None, Revision::Named),
            _ => Revision::None,
        };
        let mut files = Vec::with_capacity(objects.len());
        for Placed {
            rel,
            object,
            sha256,
        } in objects
        {
            let mut url = url::Url::parse(&format!(
                "{}/download/storage/v1/b/{}/o/{}",
                session.base,
                encode(&gs.bucket),
                encode(&object.name)
            ))
            .map_err(|e| crate::Error::Source {
                failure: crate::SourceFailure::Protocol,
                message: format!("`{}` makes no download URL: {e}", session.base),
                hint: None,
            })?;
            url.query_pairs_mut().append_pair("alt", "media");
            if let Some(generation) = &object.generation {
                url.query_pairs_mut().append_pair("generation", generation);
            }
            files.push(ListedFile {
                path: rel,
                size: object.size.as_deref().and_then(|s| s.parse().ok()),
                stated: sha256.map_or(Stated::Nothing, Stated::Sha256),
                checksum: checksum(&object),
                etag: object.etag.clone(),
                media_type: None,
                local: None,
                source: Some(Box::new(ObjectSource {
                    // The generation is part of what a resume record is held against.
                    display: format!(
                        "{}/{}/{} (generation {})",
                        session.endpoint,
                        gs.bucket,
                        object.name,
                        object.generation.as_deref().unwrap_or("?")
                    ),
                    session: Arc::clone(session),
                    url,
                    gone: format!(
                        "object `{}` in bucket `{}` at `{}` changed or went away while it was read (generation `{}` is gone)",
                        object.name,
                        gs.bucket,
                        session.endpoint,
                        object.generation.as_deref().unwrap_or("?")
                    ),
                })),
                unpack: None,
            });
        }
        Ok(Listing {
            label: format!("gs://{}/{}", gs.bucket, gs.object),
            dest,
            select: (!gs.is_prefix()).then(|| files[0].path.clone()),
            fetcher: "gcs",
            fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
            revision,
            origin: Some(session.endpoint.clone()),
            include,
            exclude,
            parallel: self.parallel,
            engine: &self.engine,
            files,
            claim,
            signatures: Vec::new(),
        })
    }
}

/// The checksum Cloud Storage states for `object`: its CRC32C (always given, and quick to
/// compute), else its MD5 (absent for composite objects).
fn checksum(object: &Object) -> Option<Checksum> {
    object
        .crc32c
        .as_deref()
        .and_then(Checksum::crc32c_base64)
        .or_else(|| object.md5_hash.as_deref().and_then(Checksum::md5_base64))
}

/// A short name for what the objects are now: their names, sizes and generations.
fn version_of(objects: &[Placed]) -> String {
    let mut text = String::new();
    for Placed { object: o, .. } in objects {
        for part in [
            Some(o.name.as_str()),
            o.size.as_deref(),
            o.generation.as_deref(),
            o.etag.as_deref(),
        ] {
            text.push_str(part.unwrap_or_default());
            text.push('\0');
        }
        text.push('\n');
    }
    Digest::sha256_of(text.as_bytes()).value()[..16].to_owned()
}

/// One object, as the download engine's [`RequestSource`]: every request (each range, each
/// retry) carries the token held at that moment, and a refusal gets a new one.
struct ObjectSource {
    session: Arc<Session>,
    /// The bytes of the generation listed: every range reads the same bytes, and an object
    /// replaced meanwhile is a `404`, never a mix.
    url: url::Url,
    display: String,
    /// What a `404` for the bytes means.
    gone: String,
}

impl RequestSource for ObjectSource {
    fn display(&self) -> &str {
        &self.display
    }

    fn request(&self, client: &Client, headers: HeaderMap) -> RequestBuilder {
        client
            .get(self.url.clone())
            .headers(self.session.authorization())
            .headers(headers)
    }

    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        _status: StatusCode,
        _headers: &'a HeaderMap,
    ) -> BoxFuture<'a, bool> {
        Box::pin(self.session.refresh(client))
    }

    fn not_found(&self) -> Option<mp_transfer::Error> {
        Some(
            crate::Error::Source {
                failure: crate::SourceFailure::NotFound,
                message: self.gone.clone(),
                hint: Some("run the same command again to fetch the object as it is now".into()),
            }
            .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_preferred_and_md5_taken_when_it_is_absent() {
        let mut object = Object {
            name: "x".into(),
            size: Some("11".into()),
            generation: Some("1".into()),
            etag: None,
            crc32c: Some("yZRlqg==".into()),
            md5_hash: Some("XrY7u+Ae7tCTyyK7j1rNww==".into()),
        };
        assert_eq!(checksum(&object), Some(Checksum::Crc32c(0xc994_65aa)));
        object.crc32c = None;
        assert!(matches!(checksum(&object), Some(Checksum::Md5(_))));
        object.md5_hash = Some("not base64".into());
        assert_eq!(checksum(&object), None);
    }
}
