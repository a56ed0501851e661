//! The in-toto statement a model signature signs: the model's name and digest, how it was
//! serialised, the paths left out, and every file with its sha256.
//!
//! ```json
//! { "_type": "https://in-toto.io/Statement/v1",
//!   "subject": [{ "name": "MODEL", "digest": { "sha256": "<digest of the digests>" } }],
//!   "predicateType": "https://model_signing/signature/v1.0",
//!   "predicate": {
//!     "serialization": { "method": "files", "hash_type": "sha256", "allow_symlinks": false,
//!                        "ignore_paths": ["model.sig", ".git", ".gitattributes", ".github", ".gitignore"] },
//!     "resources": [{ "name": "dir/file", "algorithm": "sha256", "digest": "<hex>" }, …] } }
//! ```
//!
//! The subject's digest is the sha256 of the files' raw digests, concatenated in the order the
//! resources are listed (the reference signer lists them sorted by path).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use catalog_core::{Algorithm, Digest, SafeRelPath};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::Error;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The model signature's predicate type.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The most files a statement may list. A model of more files than this is not one this crate
/// takes; the bound keeps a hostile statement from holding memory for a million entries.
pub const MAX_FILES: usize = 200_000;
/// The most ignored paths a statement may list.
pub const MAX_IGNORE_PATHS: usize = 1_024;
/// The paths the reference signer leaves out of a model by default: the signature itself and
/// git's files. A path is ignored when it is one of these or lies under one.
pub const DEFAULT_IGNORE_PATHS: [&str; 5] = [
    "model.sig",
    ".git",
    ".gitattributes",
    ".github",
    ".gitignore",
];

/// A signed statement, read and checked: its files are safe relative paths, listed once, and
/// its model digest is the digest of their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    model_name: String,
    model_digest: Digest,
    files: BTreeMap<SafeRelPath, Digest>,
    ignore_paths: Vec<SafeRelPath>,
}

impl Statement {
    /// Reads a statement from the DSSE payload's bytes.
    pub fn read(payload: &[u8]) -> Result<Statement, Error> {
        if payload.len() > crate::MAX_STATEMENT_BYTES {
            return Err(Error::StatementTooLarge {
                limit: crate::MAX_STATEMENT_BYTES,
            });
        }
        let json = |source| Error::StatementJson { source };
        let raw: RawStatement<'_> = serde_json::from_slice(payload).map_err(json)?;
        if raw.kind != STATEMENT_TYPE {
            return Err(Error::StatementType(printable(&raw.kind)));
        }
        if raw.predicate_type != PREDICATE_TYPE {
            return Err(Error::PredicateType(printable(&raw.predicate_type)));
        }
        let subjects = raw.subject.take("subjects")?;
        let [subject] = subjects.as_slice() else {
            return Err(Error::Subjects(subjects.len()));
        };
        let predicate: RawPredicate = serde_json::from_str(raw.predicate.get()).map_err(json)?;
        let serialization = predicate.serialization;
        if serialization.method != "files" || serialization.hash_type != "sha256" {
            return Err(Error::Serialization {
                method: printable(&serialization.method),
                hash: printable(&serialization.hash_type),
            });
        }
        let ignore_paths = serialization
            .ignore_paths
            .map(|paths| paths.take("ignored paths"))
            .transpose()?
            .unwrap_or_default()
            .into_iter()
            .map(safe_path)
            .collect::<Result<Vec<_>, _>>()?;

        let mut files = BTreeMap::new();
        let mut hasher = Sha256::new();
        for resource in predicate.resources.take("files")? {
            let path = safe_path(resource.name)?;
            let digest = if resource.algorithm == "sha256" {
                format!("sha256:{}", resource.digest).parse::<Digest>().ok()
            } else {
                None
            };
            let Some(digest) = digest else {
                return Err(Error::FileDigest {
                    name: path.to_string(),
                });
            };
            hasher.update(digest.bytes());
            if let Some(_twice) = files.insert(path.clone(), digest) {
                return Err(Error::DuplicatePath(path.into_string()));
            }
        }
        let computed = Digest::sha256_from_bytes(hasher.finalize().into());
        let expected = subject.digest.sha256.clone().unwrap_or_default();
        if !expected.eq_ignore_ascii_case(computed.value()) {
            return Err(Error::ModelDigest {
                expected: printable(&expected),
                computed,
            });
        }
        Ok(Statement {
            model_name: subject.name.clone(),
            model_digest: computed,
            files,
            ignore_paths,
        })
    }

    /// Builds the statement for `files` (the ones under the default ignore paths left out),
    /// and its JSON, which is what is signed.
    pub(crate) fn build(
        model_name: &str,
        files: &[(SafeRelPath, Digest)],
    ) -> Result<Vec<u8>, Error> {
        let ignore_paths: Vec<SafeRelPath> = DEFAULT_IGNORE_PATHS
            .iter()
            .filter_map(|p| SafeRelPath::new(*p).ok())
            .collect();
        let mut sorted: BTreeMap<&SafeRelPath, &Digest> = BTreeMap::new();
        for (path, digest) in files {
            if digest.algo() != Algorithm::Sha256 {
                return Err(Error::SignDigest {
                    path: path.to_string(),
                    digest: digest.clone(),
                });
            }
            if is_ignored(&ignore_paths, path) {
                continue;
            }
            if sorted.insert(path, digest).is_some() {
                return Err(Error::DuplicatePath(path.to_string()));
            }
        }
        let mut hasher = Sha256::new();
        let resources: Vec<OutResource<'_>> = sorted
            .iter()
            .map(|(path, digest)| {
                hasher.update(digest.bytes());
                OutResource {
                    name: path.as_str(),
                    algorithm: "sha256",
                    digest: digest.value(),
                }
            })
            .collect();
        let model_digest = Digest::sha256_from_bytes(hasher.finalize().into());
        let statement = OutStatement {
            kind: STATEMENT_TYPE,
            subject: [OutSubject {
                name: model_name,
                digest: OutSha256 {
                    sha256: model_digest.value(),
                },
            }],
            predicate_type: PREDICATE_TYPE,
            predicate: OutPredicate {
                serialization: OutSerialization {
                    method: "files",
                    hash_type: "sha256",
                    allow_symlinks: false,
                    ignore_paths: DEFAULT_IGNORE_PATHS.to_vec(),
                },
                resources,
            },
        };
        serde_json::to_vec_pretty(&statement).map_err(|e| Error::Sign {
            reason: e.to_string(),
        })
    }

    /// The model's name, as the signer gave it (informative only: renaming a model does not
    /// change its signature).
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The model's digest: the sha256 over its files' digests, which names this exact set of
    /// files.
    pub fn model_digest(&self) -> &Digest {
        &self.model_digest
    }

    /// The signed files and their sha256 digests, ordered by path.
    pub fn files(&self) -> &BTreeMap<SafeRelPath, Digest> {
        &self.files
    }

    /// The signed digest of one file, if the statement lists it.
    pub fn file(&self, path: &SafeRelPath) -> Option<&Digest> {
        self.files.get(path)
    }

    /// The paths the signer left out; a model's file at or under one of them is not checked.
    pub fn ignore_paths(&self) -> &[SafeRelPath] {
        &self.ignore_paths
    }

    /// Whether `path` is one of the ignored paths or lies under one.
    pub fn is_ignored(&self, path: &SafeRelPath) -> bool {
        is_ignored(&self.ignore_paths, path)
    }
}

fn is_ignored(ignore_paths: &[SafeRelPath], path: &SafeRelPath) -> bool {
    let path = path.as_str();
    ignore_paths.iter().any(|ignored| {
        let ignored = ignored.as_str();
        path == ignored
            || path
                .strip_prefix(ignored)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

fn safe_path(name: String) -> Result<SafeRelPath, Error> {
    match SafeRelPath::new(name) {
        Ok(path) => Ok(path),
        Err(source) => Err(Error::UnsafePath {
            name: source.input().to_owned(),
            source,
        }),
    }
}

/// `text` with control characters escaped and cut to 200 characters, for an error message.
pub(crate) fn printable(text: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

#[derive(Deserialize)]
struct RawStatement<'a> {
    #[serde(rename = "_type")]
    kind: String,
    subject: Bounded<RawSubject, 16>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(borrow)]
    predicate: &'a RawValue,
}

#[derive(Deserialize)]
struct RawSubject {
    #[serde(default)]
    name: String,
    digest: RawSha256,
}

#[derive(Deserialize)]
struct RawSha256 {
    sha256: Option<String>,
}

#[derive(Deserialize)]
struct RawPredicate {
    serialization: RawSerialization,
    resources: Bounded<RawResource, MAX_FILES>,
}

#[derive(Deserialize)]
struct RawSerialization {
    method: String,
    hash_type: String,
    ignore_paths: Option<Bounded<String, MAX_IGNORE_PATHS>>,
}

#[derive(Deserialize)]
struct RawResource {
    name: String,
    algorithm: String,
    digest: String,
}

#[derive(Serialize)]
struct OutStatement<'a> {
    #[serde(rename = "_type")]
    kind: &'a str,
    subject: [OutSubject<'a>; 1],
    #[serde(rename = "predicateType")]
    predicate_type: &'a str,
    predicate: OutPredicate<'a>,
}

#[derive(Serialize)]
struct OutSubject<'a> {
    name: &'a str,
    digest: OutSha256<'a>,
}

#[derive(Serialize)]
struct OutSha256<'a> {
    sha256: &'a str,
}

#[derive(Serialize)]
struct OutPredicate<'a> {
    serialization: OutSerialization<'a>,
    resources: Vec<OutResource<'a>>,
}

#[derive(Serialize)]
struct OutSerialization<'a> {
    method: &'a str,
    hash_type: &'a str,
    allow_symlinks: bool,
    ignore_paths: Vec<&'a str>,
}

#[derive(Serialize)]
struct OutResource<'a> {
    name: &'a str,
    algorithm: &'a str,
    digest: &'a str,
}

/// A JSON array of which at most `N` items are kept: the ones past `N` are read over without
/// being held, and `overflow` says there were some.
pub(crate) struct Bounded<T, const N: usize> {
    pub(crate) items: Vec<T>,
    pub(crate) overflow: bool,
}

impl<T, const N: usize> Bounded<T, N> {
    /// The items, or [`Error::TooMany`] when there were more than `N`.
    pub(crate) fn take(self, what: &'static str) -> Result<Vec<T>, Error> {
        if self.overflow {
            Err(Error::TooMany { what, limit: N })
        } else {
            Ok(self.items)
        }
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for Items<T, N> {
            type Value = Bounded<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of at most {N} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while items.len() < N {
                    match seq.next_element()? {
                        Some(item) => items.push(item),
                        None => {
                            return Ok(Bounded {
                                items,
                                overflow: false,
                            });
                        }
                    }
                }
                let mut overflow = false;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    overflow = true;
                }
                Ok(Bounded { items, overflow })
            }
        }
        deserializer.deserialize_seq(Items::<T, N>(PhantomData))
    }
}
