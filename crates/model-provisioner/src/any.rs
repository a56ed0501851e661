//! [`AnyFetcher`]: one fetcher that hands each reference to the one for its scheme.

use catalog_core::{CatalogEntry, ModelRef};

use crate::error::Result;
use crate::fetcher::ModelFetcher;
use crate::file::FileFetcher;
use crate::mirror::{HfMirror, MirrorContext, Mirrors, Route, Target, skip_reason};
use crate::request::{FetchRequest, Fetched, unsupported};

/// A fetcher that can be shared across threads.
type Boxed = Box<dyn ModelFetcher + Send + Sync>;

/// Dispatches by scheme: local paths to a [`FileFetcher`], URLs, `hf:`, `oci://`, `ollama:`
/// and `s3://` references to the
/// fetchers configured for them. Anything else fails with an error that names what would be
/// needed.
///
/// With [mirrors](crate::mirror), a reference that a rule matches is tried at each of its
/// mirrors first, in order, under the reference's own id. A mirror that lacks the model, does
/// not answer, or refuses the credentials is passed over (and logged); one whose bytes or
/// manifest disagree with what it states fails the fetch, and the origin is not asked.
#[derive(Default)]
pub struct AnyFetcher {
    file: FileFetcher,
    http: Option<Boxed>,
    hf: Option<Boxed>,
    oci: Option<Boxed>,
    s3: Option<Boxed>,
    /// Registered sources, by the schemes they read.
    registered: Vec<(&'static [&'static str], Boxed)>,
    mirrors: Mirrors,
    mirror_context: MirrorContext,
}

impl std::fmt::Debug for AnyFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyFetcher")
            .field("file", &self.file)
            .field("http", &self.http.as_ref().map(|h| h.name()))
            .field("hf", &self.hf.as_ref().map(|h| h.name()))
            .field("oci", &self.oci.as_ref().map(|h| h.name()))
            .field("s3", &self.s3.as_ref().map(|h| h.name()))
            .field(
                "registered",
                &self
                    .registered
                    .iter()
                    .map(|(s, f)| (s, f.name()))
                    .collect::<Vec<_>>(),
            )
            .field("mirrors", &self.mirrors)
            .field("mirror_context", &self.mirror_context)
            .finish()
    }
}

impl AnyFetcher {
    /// Local files only, handled by `file`.
    pub fn new(file: FileFetcher) -> Self {
        AnyFetcher {
            file,
            http: None,
            hf: None,
            oci: None,
            s3: None,
            registered: Vec::new(),
            mirrors: Mirrors::new(),
            mirror_context: MirrorContext::default(),
        }
    }

    /// Tries the mirrors `mirrors` give before a reference's origin; `context` holds the
    /// settings their matches depend on (Ollama's registry, an `hf:` repository's filters).
    #[must_use]
    pub fn with_mirrors(mut self, mirrors: Mirrors, context: MirrorContext) -> Self {
        self.mirrors = mirrors;
        self.mirror_context = context;
        self
    }

    /// Fetches `req` from the mirror `route` names, under `req`'s id.
    fn fetch_from(&self, req: &FetchRequest<'_>, route: &Route) -> Result<Fetched> {
        let mut fetched = match &route.target {
            Target::Reference(mirrored) => {
                let fetcher = self.fetcher_for(mirrored)?;
                // A registered source reads its references as an ensure hands them over: in
                // their normal form, the configured endpoint named.
                let completed = match mirrored {
                    ModelRef::Other(_) => fetcher.complete(mirrored),
                    _ => None,
                };
                let request = FetchRequest {
                    reference: completed.as_ref().unwrap_or(mirrored),
                    id: req.id,
                    expected: req.expected,
                    layout: req.layout,
                    reporter: req.reporter,
                    previous: None,
                };
                let mut got = fetcher.fetch(&request)?;
                got.provenance.origin = Some(mirrored.redacted());
                got
            }
            Target::Hf(mirror) => self.fetch_hf_copy(req, mirror)?,
        };
        fetched.provenance.fetcher = format!("mirror+{}", fetched.provenance.fetcher);
        Ok(fetched)
    }

    /// Fetches the hub's model `req` names from `mirror`, a registry or bucket where
    /// `model-provisioner mirror` put it: listed by the source of the mirror's scheme (a
    /// registry, S3, or a registered store), checked against what was asked and placed as the
    /// hub's model.
    fn fetch_hf_copy(&self, req: &FetchRequest<'_>, mirror: &HfMirror) -> Result<Fetched> {
        let probe = mirror
            .location
            .probe()
            .ok_or_else(|| unsupported(req.reference))?;
        let fetcher = self.fetcher_for(&probe)?;
        #[cfg(feature = "http")]
        if let Some(source) = fetcher.source() {
            let listing = crate::mirror::resolve_hf_copy(source, req, mirror)?;
            return crate::pipeline::place(req, listing);
        }
        let _ = (fetcher, req);
        Err(unsupported(&probe))
    }

    /// Also fetches `http://` and `https://` references with `http`.
    #[must_use]
    pub fn with_http(mut self, http: impl ModelFetcher + Send + Sync + 'static) -> Self {
        self.http = Some(Box::new(http));
        self
    }

    /// Also fetches `hf:` references with `hf` (the native client or the shell-out).
    #[must_use]
    pub fn with_hf(mut self, hf: impl ModelFetcher + Send + Sync + 'static) -> Self {
        self.hf = Some(Box::new(hf));
        self
    }

    /// Also fetches `oci://` and `ollama:` references with `oci`.
    #[must_use]
    pub fn with_oci(mut self, oci: impl ModelFetcher + Send + Sync + 'static) -> Self {
        self.oci = Some(Box::new(oci));
        self
    }

    /// Also fetches `s3://` references with `s3`.
    #[must_use]
    pub fn with_s3(mut self, s3: impl ModelFetcher + Send + Sync + 'static) -> Self {
        self.s3 = Some(Box::new(s3));
        self
    }

    /// Also fetches the references of `schemes` (lowercase, without `:`) with `fetcher`, a
    /// registered source ([`SourceKind`](crate::SourceKind)); a scheme already registered keeps
    /// its first fetcher.
    #[must_use]
    pub fn with_source(
        mut self,
        schemes: &'static [&'static str],
        fetcher: impl ModelFetcher + Send + Sync + 'static,
    ) -> Self {
        self.registered.push((schemes, Box::new(fetcher)));
        self
    }

    /// The fetcher for `mr`'s scheme, or the error that names what this build would need: the
    /// one place that dispatches by scheme.
    pub fn fetcher_for(&self, mr: &ModelRef) -> Result<&dyn ModelFetcher> {
        let configured = match mr {
            ModelRef::File(_) => return Ok(&self.file),
            ModelRef::Http(_) => &self.http,
            ModelRef::Hf(_) => &self.hf,
            ModelRef::Oci(_) | ModelRef::Ollama(_) => &self.oci,
            ModelRef::S3(_) => &self.s3,
            ModelRef::Other(other) => {
                return self
                    .registered
                    .iter()
                    .find(|(schemes, _)| schemes.contains(&other.scheme()))
                    .map(|(_, fetcher)| &**fetcher as &dyn ModelFetcher)
                    .ok_or_else(|| unsupported(mr));
            }
        };
        match configured {
            Some(fetcher) => Ok(&**fetcher),
            None => Err(unsupported(mr)),
        }
    }
}

impl ModelFetcher for AnyFetcher {
    fn name(&self) -> &'static str {
        "any"
    }

    fn fetch(&self, req: &FetchRequest<'_>) -> Result<Fetched> {
        let routes = if self.mirror_context.offline {
            Vec::new()
        } else {
            self.mirrors.routes(req.reference, &self.mirror_context)
        };
        for route in routes {
            let at = route.target.describe();
            tracing::info!(id = req.id, mirror = %at, rule = %route.rule, "trying a mirror");
            match self.fetch_from(req, &route) {
                Ok(fetched) => {
                    tracing::info!(id = req.id, mirror = %at, "fetched from the mirror");
                    return Ok(fetched);
                }
                Err(e) => {
                    let Some((why, loud)) = skip_reason(&e) else {
                        return Err(e);
                    };
                    if loud {
                        tracing::warn!(id = req.id, mirror = %at, error = %e, "{why}; passing it over");
                    } else {
                        tracing::info!(id = req.id, mirror = %at, error = %e, "{why}; passing it over");
                    }
                    req.reporter.event(&mp_progress::Event::MirrorFallback {
                        id: req.id,
                        mirror: &at,
                        reason: &format!("{why}: {e}"),
                    });
                }
            }
        }
        self.fetcher_for(req.reference)?.fetch(req)
    }

    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        self.fetcher_for(reference).ok()?.complete(reference)
    }

    fn check(&self, reference: &ModelRef) -> std::result::Result<(), catalog_core::ParseRefError> {
        match self.fetcher_for(reference) {
            Ok(fetcher) => fetcher.check(reference),
            Err(_) => Ok(()),
        }
    }

    fn schemes(&self) -> Vec<&'static str> {
        self.registered
            .iter()
            .flat_map(|(schemes, _)| schemes.iter().copied())
            .collect()
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        // The entry's source is the reference it was ensured from, without credentials. An
        // entry no fetcher here could make again is still handed out as it is.
        match entry.source.parse::<ModelRef>() {
            Ok(mr) => self.fetcher_for(&mr).map_or(true, |f| f.accepts(entry)),
            Err(_) => true,
        }
    }

    #[cfg(feature = "http")]
    fn folder(
        &self,
        destination: &ModelRef,
    ) -> Option<Result<Box<dyn crate::object_store::Folder + '_>>> {
        // Only a registered source's bucket: `s3://` pushes go through the publisher's client.
        match destination {
            ModelRef::Other(_) => self.fetcher_for(destination).ok()?.folder(destination),
            _ => None,
        }
    }
}
