//! Objects as a [listing](crate::pipeline::Listing) for the pipeline, published as
//! `models/s3/<endpoint>/<bucket>/<key>/<version>/`. Each object the pipeline downloads comes
//! from the endpoint as an [`ObjectSource`], which presigns each request afresh.

use std::sync::Arc;

use catalog_core::{Digest, S3Ref};
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};

use super::session::Session;
use super::{Manifest, Object, S3Fetcher};
use crate::pipeline::{Claim, ListedFile, Listing, Revision, Stated};
use crate::request::FetchRequest;
use mp_transfer::{BoxFuture, RequestSource};

impl S3Fetcher {
    /// The listing of `objects` of `s3`, published as
    /// `models/s3/<endpoint>/<bucket>/<key>/<version>/`: the directory of a folder, or the one
    /// object inside it.
    pub(super) fn listing<'s>(
        &'s self,
        req: &FetchRequest<'_>,
        s3: &S3Ref,
        session: &Arc<Session<'s>>,
        objects: Vec<Object>,
        manifest: Option<Manifest>,
    ) -> Listing<'s> {
        let version = version_of(&objects);
        let mut dest = req
            .layout
            .models_dir()
            .join("s3")
            .join(session.endpoint.replace("://", "/"))
            .join(&s3.bucket);
        for segment in s3.key.split('/').filter(|s| !s.is_empty()) {
            dest.push(segment);
        }
        dest.push(version);
        let (include, exclude) = if s3.is_prefix() {
            (self.options.include.clone(), self.options.exclude.clone())
        } else {
            (Vec::new(), Vec::new())
        };
        Listing {
            label: format!("s3://{}/{}", s3.bucket, s3.key),
            dest,
            select: (!s3.is_prefix()).then(|| objects[0].rel.clone()),
            fetcher: "s3",
            fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: Revision::None,
            origin: Some(session.endpoint.clone()),
            include,
            exclude,
            parallel: self.options.parallel_files,
            engine: &self.engine,
            claim: manifest.and_then(Claim::from_manifest),
            signatures: Vec::new(),
            files: objects
                .into_iter()
                .map(|object| ListedFile {
                    source: Some(Box::new(ObjectSource {
                        display: format!("{}/{}/{}", session.endpoint, s3.bucket, object.key),
                        session: Arc::clone(session),
                        key: object.key,
                    })),
                    path: object.rel,
                    size: object.size,
                    stated: object.sha256.map_or(Stated::Nothing, Stated::Sha256),
                    checksum: None,
                    etag: object.etag,
                    media_type: None,
                    local: None,
                    unpack: None,
                })
                .collect(),
        }
    }
}

/// A short name for what the objects are now: their keys, sizes and `ETag`s.
fn version_of(objects: &[Object]) -> String {
    let mut text = String::new();
    for o in objects {
        text.push_str(&o.key);
        text.push('\0');
        text.push_str(&o.size.map(|s| s.to_string()).unwrap_or_default());
        text.push('\0');
        text.push_str(o.etag.as_deref().unwrap_or_default());
        text.push('\n');
    }
    Digest::sha256_of(text.as_bytes()).value()[..16].to_owned()
}

/// One object, as the download engine's [`RequestSource`]: each request gets a presigned URL
/// of its own.
struct ObjectSource<'a> {
    session: Arc<Session<'a>>,
    key: String,
    display: String,
}

impl RequestSource for ObjectSource<'_> {
    fn display(&self) -> &str {
        &self.display
    }

    fn request(&self, client: &Client, headers: HeaderMap) -> RequestBuilder {
        client.get(self.session.get_url(&self.key)).headers(headers)
    }

    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        _status: StatusCode,
        _headers: &'a HeaderMap,
    ) -> BoxFuture<'a, bool> {
        Box::pin(self.session.refresh(client))
    }
}
