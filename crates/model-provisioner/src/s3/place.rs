//! Objects placed in an [`Assembly`], several at once, and the assembly published as
//! `models/s3/<endpoint>/<bucket>/<key>/<version>/`. Each object comes from the
//! content-addressed store when its sha256 is known and there, else from the endpoint through
//! the [download engine](crate::download), as an [`ObjectSource`] that presigns each request
//! afresh.

use catalog_core::{Digest, S3Ref};
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};

use super::session::Session;
use super::{Object, S3Fetcher};
use crate::assemble::{Assembly, Publish};
use crate::download::{
    BoxFuture, Download, Expected, Planned, RequestSource, ensure_room, partial_key,
};
use crate::error::{Error, Result};
use crate::fetcher::{FetchRequest, Fetched};
use crate::parallel::{Tee, in_parallel};
use crate::reporter::Progress;

impl S3Fetcher {
    pub(super) fn place_and_publish(
        &self,
        req: &FetchRequest<'_>,
        s3: &S3Ref,
        session: &Session<'_>,
        objects: Vec<Object>,
    ) -> Result<Fetched> {
        let keys: Vec<String> = objects
            .iter()
            .map(|o| partial_key(&object_id(req, s3, o)))
            .collect();
        let planned: Vec<Planned<'_>> = objects
            .iter()
            .zip(&keys)
            .map(|(o, key)| Planned {
                size: o.size,
                digest: o.sha256.as_ref(),
                key: Some(key),
            })
            .collect();
        ensure_room(req.layout, req.id, &planned)?;
        let version = version_of(&objects);
        let select = (!s3.is_prefix()).then(|| objects[0].rel.clone());
        let label = format!("s3://{}/{}", s3.bucket, s3.key);
        let (assembly, bytes_read) = self.place_objects(req, &label, s3, session, objects)?;
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
        assembly.publish(Publish {
            id: req.id,
            dest,
            select: select.as_ref(),
            expected: req.expected,
            fetcher: "s3",
            fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
            resolved_revision: None,
            origin: Some(session.endpoint.clone()),
            include: if s3.is_prefix() {
                self.options.include.clone()
            } else {
                Vec::new()
            },
            exclude: if s3.is_prefix() {
                self.options.exclude.clone()
            } else {
                Vec::new()
            },
            bytes_read,
        })
    }

    /// Every object placed in a new assembly, several at once; returns it and the bytes
    /// downloaded.
    pub(super) fn place_objects<'l>(
        &self,
        req: &FetchRequest<'l>,
        label: &str,
        s3: &S3Ref,
        session: &Session<'_>,
        objects: Vec<Object>,
    ) -> Result<(Assembly<'l>, u64)> {
        let assembly = Assembly::new(req.layout)?;
        let total = objects.iter().filter_map(|o| o.size).sum();
        let overall = req.reporter.start(label, Some(total));
        let placed = in_parallel(objects, self.options.parallel_files, |object| {
            let both = Tee {
                file: req.reporter.start(object.rel.as_str(), object.size),
                overall: &*overall,
            };
            let result = self.place(req, s3, session, &assembly, &object, &both);
            both.file.finish();
            result
        });
        overall.finish();
        let bytes_read = placed?.into_iter().sum();
        Ok((assembly, bytes_read))
    }

    /// One object, from the store or the endpoint, placed in `assembly`. Returns the bytes
    /// downloaded.
    fn place(
        &self,
        req: &FetchRequest<'_>,
        s3: &S3Ref,
        session: &Session<'_>,
        assembly: &Assembly<'_>,
        object: &Object,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let layout = req.layout;
        // The reference may be this very object: then a wrong `--digest` fails the download.
        let id = object_id(req, s3, object);
        let expected = if s3.is_prefix() {
            object.sha256.as_ref()
        } else {
            req.expected.or(object.sha256.as_ref())
        };
        if let Some(sha) = &object.sha256
            && layout.blob_path(sha).is_file()
        {
            let size = assembly.place_blob(&object.rel, sha.clone(), object.etag.clone())?;
            assembly.vouch(&object.rel);
            progress.advance(size);
            tracing::debug!(key = %object.key, "reused a blob already in the store");
            return Ok(0);
        }
        let engine = self.engine()?;
        let source = ObjectSource {
            session,
            key: object.key.clone(),
            display: format!("{}/{}/{}", session.endpoint, s3.bucket, object.key),
        };
        let downloaded = engine.fetch(
            layout,
            &Download {
                source: &source,
                expected: Expected {
                    size: object.size,
                    digest: expected,
                },
                id: &id,
                key: Some(&partial_key(&id)),
            },
            progress,
        )?;
        Error::check_digest(&id, object.sha256.as_ref(), &downloaded.staged.digest)?;
        assembly.place_staged(&object.rel, downloaded.staged, object.etag.clone())?;
        if object.sha256.is_some() {
            assembly.vouch(&object.rel);
        }
        Ok(downloaded.transferred)
    }
}

/// The id a download of `object` names (and its partial file is keyed by): the model's id
/// for a single object, `<id>/<path>` for an object of a folder.
fn object_id(req: &FetchRequest<'_>, s3: &S3Ref, object: &Object) -> String {
    if s3.is_prefix() {
        format!("{}/{}", req.id, object.rel)
    } else {
        req.id.to_owned()
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
    session: &'a Session<'a>,
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
