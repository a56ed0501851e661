//! Fixtures for the tests of mirror rules and of the layout of a mirrored `hf:` model.

use catalog_core::{ModelRef, OtherRef, ParseRefError};

use super::{MirrorContext, MirrorShape, Mirrors, Target};

/// The registered schemes of the tests' context: two stores of folders and a hub, as the
/// crate's `gs://`, `az://` and `modelscope:` sources declare themselves.
const SHAPES: &[(&str, MirrorShape)] = &[
    ("gs", MirrorShape::Bucket),
    ("gs+http", MirrorShape::Bucket),
    ("az", MirrorShape::Bucket),
    ("az+http", MirrorShape::Bucket),
    (
        "modelscope",
        MirrorShape::Hub {
            default_revision: "master",
        },
    ),
    ("shelf", MirrorShape::Path),
];

pub(super) type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

pub(super) fn rules(list: &[&str]) -> Mirrors {
    Mirrors::from_flags(list).expect("valid rules")
}

pub(super) fn context() -> MirrorContext {
    MirrorContext {
        ollama_registry: catalog_core::OLLAMA_REGISTRY.to_owned(),
        shapes: SHAPES.to_vec(),
        ..MirrorContext::default()
    }
}

/// `reference`, of a registered scheme, checked by this crate's kind of it, as a provisioner
/// checks a rule's mirror in a store: the stores' own grammars, in the builds that have them.
#[cfg(feature = "http")]
pub(super) fn read_registered(reference: &OtherRef) -> Result<(), ParseRefError> {
    crate::registered::check(&crate::registered::kinds(&[]), reference)
}

/// Without `http` no kind is registered, and none refuses a reference.
#[cfg(not(feature = "http"))]
#[expect(
    clippy::unnecessary_wraps,
    reason = "the check `Mirrors::check` takes, as in the builds with kinds"
)]
pub(super) fn read_registered(_: &OtherRef) -> Result<(), ParseRefError> {
    Ok(())
}

pub(super) fn targets(mirrors: &Mirrors, reference: &str) -> Vec<String> {
    let mr = parse(reference);
    mirrors
        .routes(&mr, &context())
        .into_iter()
        .map(|r| match r.target {
            Target::Reference(m) => m.to_string(),
            Target::Hf(h) => h.describe(),
        })
        .collect()
}

/// `reference`, of a built-in scheme or of one of the context's registered ones.
pub(super) fn parse(reference: &str) -> ModelRef {
    let schemes: Vec<&str> = SHAPES.iter().map(|(s, _)| *s).collect();
    ModelRef::parse_with(reference, &schemes).expect("a reference")
}
