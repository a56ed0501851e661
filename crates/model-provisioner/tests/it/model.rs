//! A model-based test: random sequences of operations on a real cache, checked after each
//! step against a small in-memory model of what the catalog should say.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use catalog_core::{CatalogStore, Digest, Lifecycle, ModelRef, Outcome, Storage};
use model_provisioner::{FileFetcher, FsCatalog, ModelProvisioner};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};

const FILES: usize = 4;

/// Which digest an `ensure` passes.
#[derive(Debug, Clone, Copy)]
enum Given {
    None,
    Right,
    Wrong,
}

#[derive(Debug, Clone)]
enum Op {
    Ensure {
        file: usize,
        given: Given,
        copy: bool,
    },
    /// Flips a byte, keeping size and mtime: a change the fingerprint cannot see.
    Corrupt {
        file: usize,
        at: prop::sample::Index,
    },
    /// New content and a new mtime.
    Rewrite {
        file: usize,
        content: Vec<u8>,
    },
    Retire(usize),
    Rm(usize),
    Gc,
    Verify(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let file = 0..FILES;
    let given = prop_oneof![Just(Given::None), Just(Given::Right), Just(Given::Wrong)];
    prop_oneof![
        4 => (file.clone(), given, any::<bool>())
            .prop_map(|(file, given, copy)| Op::Ensure { file, given, copy }),
        2 => (file.clone(), any::<prop::sample::Index>())
            .prop_map(|(file, at)| Op::Corrupt { file, at }),
        1 => (file.clone(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(file, content)| Op::Rewrite { file, content }),
        1 => file.clone().prop_map(Op::Retire),
        1 => file.clone().prop_map(Op::Rm),
        1 => Just(Op::Gc),
        2 => file.prop_map(Op::Verify),
    ]
}

/// What the model expects the catalog to hold for one file.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    lifecycle: Lifecycle,
    storage: Storage,
    digest: Option<Digest>,
    computed: Option<Digest>,
    outcome: Outcome,
    /// The file's version when its fingerprint was recorded; `None` for a copy in the cache,
    /// which nothing here changes.
    seen_version: Option<u64>,
    /// The digest of the bytes the entry points at now.
    actual: Digest,
}

/// The real files, and the model of the catalog.
struct World {
    _dir: tempfile::TempDir,
    cache: PathBuf,
    paths: Vec<PathBuf>,
    content: Vec<Vec<u8>>,
    /// Bumped by each rewrite: a new version has a new fingerprint.
    version: Vec<u64>,
    model: BTreeMap<usize, Expected>,
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

impl World {
    fn new() -> Result<Self, TestCaseError> {
        let dir = tempfile::tempdir().map_err(fail)?;
        let root = fs::canonicalize(dir.path()).map_err(fail)?;
        let mut paths = Vec::new();
        let mut content = Vec::new();
        for i in 0..FILES {
            let path = root.join(format!("m{i}.gguf"));
            let bytes = format!("GGUF weights of model {i}").into_bytes();
            fs::write(&path, &bytes).map_err(fail)?;
            paths.push(path);
            content.push(bytes);
        }
        Ok(World {
            cache: root.join("cache"),
            _dir: dir,
            paths,
            content,
            version: vec![0; FILES],
            model: BTreeMap::new(),
        })
    }

    fn id(&self, file: usize) -> String {
        format!("file:{}", self.paths[file].display())
    }

    fn reference(&self, file: usize) -> ModelRef {
        ModelRef::File(catalog_core::FileRef {
            path: self.paths[file].clone(),
            explicit_scheme: false,
        })
    }

    fn catalog(&self) -> Result<FsCatalog, TestCaseError> {
        FsCatalog::open(&self.cache).map_err(fail)
    }

    /// Whether the fingerprint `e` recorded still matches its artifact.
    fn fresh(&self, file: usize, e: &Expected) -> bool {
        e.seen_version.is_none_or(|v| v == self.version[file])
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Ensure { file, given, copy } => self.ensure(file, given, copy),
            Op::Corrupt { file, at } => {
                let path = &self.paths[file];
                let mtime = fs::metadata(path)
                    .and_then(|m| m.modified())
                    .map_err(fail)?;
                let i = at.index(self.content[file].len());
                self.content[file][i] ^= 0xff;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(fail)?;
                f.write_all(&self.content[file]).map_err(fail)?;
                f.set_modified(mtime).map_err(fail)?;
                self.in_place_changed(file);
                Ok(())
            }
            Op::Rewrite { file, ref content } => {
                self.version[file] += 1;
                fs::write(&self.paths[file], content).map_err(fail)?;
                // A distinct mtime per version, whatever the file system's clock granularity.
                let mtime = SystemTime::UNIX_EPOCH
                    + Duration::from_secs(1_000_000 + self.version[file] * 1000);
                fs::File::options()
                    .write(true)
                    .open(&self.paths[file])
                    .and_then(|f| f.set_modified(mtime))
                    .map_err(fail)?;
                self.content[file].clone_from(content);
                self.in_place_changed(file);
                Ok(())
            }
            Op::Retire(file) => {
                let found = self
                    .catalog()?
                    .set_state(&self.id(file), Lifecycle::Retired)
                    .map_err(fail)?;
                prop_assert_eq!(found, self.model.contains_key(&file));
                if let Some(e) = self.model.get_mut(&file) {
                    e.lifecycle = Lifecycle::Retired;
                }
                Ok(())
            }
            Op::Rm(file) => {
                let deletion = self.catalog()?.delete(&self.id(file)).map_err(fail)?;
                prop_assert_eq!(deletion.existed(), self.model.remove(&file).is_some());
                Ok(())
            }
            Op::Gc => {
                self.catalog()?.gc(false).map_err(fail)?;
                Ok(())
            }
            Op::Verify(file) => self.verify(file),
        }
    }

    /// The bytes of an in-place entry follow its file.
    fn in_place_changed(&mut self, file: usize) {
        let now = Digest::sha256_of(&self.content[file]);
        if let Some(e) = self.model.get_mut(&file)
            && e.storage == Storage::InPlace
        {
            e.actual = now;
        }
    }

    fn ensure(&mut self, file: usize, given: Given, copy: bool) -> Result<(), TestCaseError> {
        let current = Digest::sha256_of(&self.content[file]);
        let given = match given {
            Given::None => None,
            Given::Right => Some(current.clone()),
            Given::Wrong => Some(Digest::sha256_of(b"not these weights")),
        };
        let storage = if copy {
            Storage::Cache
        } else {
            Storage::InPlace
        };
        let prev = self.model.get(&file).cloned();
        let expected = given
            .clone()
            .or_else(|| prev.as_ref().and_then(|p| p.digest.clone()));

        // What the model predicts: `Ok(entry)` or `Err(changed entry, if any)`.
        let reusable = prev
            .as_ref()
            .filter(|p| p.outcome != Outcome::Fail && p.storage == storage && self.fresh(file, p));
        let predicted: Result<Expected, Option<Expected>> = match (reusable, &expected) {
            (Some(p), None) => Ok(Expected {
                lifecycle: Lifecycle::Active,
                ..p.clone()
            }),
            (Some(p), Some(want)) if p.computed.as_ref() == Some(want) => Ok(Expected {
                lifecycle: Lifecycle::Active,
                digest: Some(want.clone()),
                outcome: Outcome::Pass,
                ..p.clone()
            }),
            // Unchanged bytes with another known digest: refused without reading them.
            (Some(p), Some(_)) if p.computed.is_some() => Err(None),
            _ => {
                // A fetch: in place hashes only when a digest is expected; a copy always does.
                let hashed = (copy || expected.is_some()).then(|| current.clone());
                match (&expected, &hashed) {
                    (Some(want), Some(got)) if want != got => Err(prev.map(|p| Expected {
                        lifecycle: Lifecycle::Retired,
                        outcome: Outcome::Fail,
                        computed: hashed.clone(),
                        ..p
                    })),
                    _ => Ok(Expected {
                        lifecycle: Lifecycle::Active,
                        storage,
                        digest: expected.clone(),
                        outcome: if expected.is_some() {
                            Outcome::Pass
                        } else {
                            Outcome::Warn
                        },
                        computed: hashed,
                        seen_version: (!copy).then_some(self.version[file]),
                        actual: current.clone(),
                    }),
                }
            }
        };

        let mr = self.reference(file);
        let real = if copy {
            ModelProvisioner::with_fetcher(&self.cache, FileFetcher::copying())
                .map_err(fail)?
                .ensure(&mr, given.as_ref())
        } else {
            ModelProvisioner::file_only(&self.cache)
                .map_err(fail)?
                .ensure(&mr, given.as_ref())
        };
        match (predicted, real) {
            (Ok(e), Ok(real)) => {
                prop_assert_eq!(real.resolved.id, self.id(file));
                self.model.insert(file, e);
            }
            (Err(changed), Err(err)) => {
                prop_assert!(err.is_verification_failure(), "unexpected error: {}", err);
                if let Some(changed) = changed {
                    self.model.insert(file, changed);
                }
            }
            (Ok(_), Err(err)) => {
                return Err(fail(format!("ensure was expected to succeed: {err}")));
            }
            (Err(_), Ok(real)) => {
                return Err(fail(format!(
                    "ensure was expected to fail, but gave {:?}",
                    real.entry
                )));
            }
        }
        Ok(())
    }

    fn verify(&mut self, file: usize) -> Result<(), TestCaseError> {
        let p = ModelProvisioner::file_only(&self.cache).map_err(fail)?;
        let real = p.verify(&self.id(file));
        let version = self.version[file];
        let Some(e) = self.model.get_mut(&file) else {
            prop_assert!(real.is_err(), "verify of an unknown id succeeded");
            return Ok(());
        };
        let reference = e.digest.clone().or_else(|| e.computed.clone());
        e.outcome = match &reference {
            Some(r) if *r == e.actual && e.digest.is_some() => Outcome::Pass,
            Some(r) if *r != e.actual => Outcome::Fail,
            _ => Outcome::Warn,
        };
        if e.outcome != Outcome::Fail {
            e.computed = Some(e.actual.clone());
        }
        if e.storage == Storage::InPlace {
            e.seen_version = Some(version);
        }
        match real {
            Ok(_) => prop_assert!(e.outcome != Outcome::Fail, "verify missed a change"),
            Err(err) => {
                prop_assert!(e.outcome == Outcome::Fail, "unexpected error: {}", err);
                prop_assert!(err.is_verification_failure(), "unexpected error: {}", err);
            }
        }
        Ok(())
    }

    /// The real catalog says what the model says.
    fn check(&self) -> Result<(), TestCaseError> {
        let catalog = self.catalog()?;
        let listed = catalog.list().map_err(fail)?;
        let ids: Vec<String> = listed.iter().map(|e| e.id.clone()).collect();
        let mut want: Vec<String> = self.model.keys().map(|f| self.id(*f)).collect();
        want.sort();
        prop_assert_eq!(ids, want);
        for (&file, e) in &self.model {
            let real = listed
                .iter()
                .find(|r| r.id == self.id(file))
                .ok_or_else(|| fail("listed above"))?;
            prop_assert_eq!(real.lifecycle, e.lifecycle, "{}", &real.id);
            prop_assert_eq!(real.storage, e.storage, "{}", &real.id);
            prop_assert_eq!(&real.digest, &e.digest, "{}", &real.id);
            prop_assert_eq!(&real.verification.computed, &e.computed, "{}", &real.id);
            prop_assert_eq!(real.verification.outcome, e.outcome, "{}", &real.id);
            match e.storage {
                Storage::InPlace => prop_assert_eq!(&real.local_path, &self.paths[file]),
                Storage::Cache => prop_assert!(real.local_path.starts_with(&self.cache)),
            }
            let bytes = fs::read(&real.local_path).map_err(fail)?;
            prop_assert_eq!(Digest::sha256_of(&bytes), e.actual.clone(), "{}", &real.id);
            // Unless the model knows the bytes changed since they were hashed, they still
            // hash to what was recorded.
            if e.lifecycle == Lifecycle::Active
                && let Some(computed) = &e.computed
                && *computed == e.actual
            {
                prop_assert_eq!(&Digest::sha256_of(&bytes), computed);
            }
        }
        for file in 0..FILES {
            let located = catalog.locate(&self.reference(file)).map_err(fail)?;
            let usable = self
                .model
                .get(&file)
                .is_some_and(|e| e.lifecycle == Lifecycle::Active && e.outcome != Outcome::Fail);
            prop_assert_eq!(located.is_some(), usable, "locate({})", file);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        // The same sequences every run, so that a failure is one a rerun shows.
        rng_seed: RngSeed::Fixed(0x6d6f_6465_6c73),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_catalog_follows_the_model_through_any_sequence_of_operations(
        ops in prop::collection::vec(op(), 1..=20)
    ) {
        let mut world = World::new()?;
        for op in &ops {
            world.apply(op)?;
            world.check().map_err(|e| fail(format!("after {op:?}: {e}")))?;
        }
        // A final gc removes nothing the catalog still points at.
        world.apply(&Op::Gc)?;
        world.check()?;
    }
}
