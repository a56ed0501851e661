//! Fixtures for the tests of mirror rules and of the layout of a mirrored `hf:` model.

use catalog_core::ModelRef;

use super::{MirrorContext, Mirrors, Target};

pub(super) type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

pub(super) fn rules(list: &[&str]) -> Mirrors {
    Mirrors::from_flags(list).expect("valid rules")
}

pub(super) fn context() -> MirrorContext {
    MirrorContext {
        ollama_registry: catalog_core::OLLAMA_REGISTRY.to_owned(),
        ..MirrorContext::default()
    }
}

pub(super) fn targets(mirrors: &Mirrors, reference: &str) -> Vec<String> {
    let mr: ModelRef = reference.parse().expect("a reference");
    mirrors
        .routes(&mr, &context())
        .into_iter()
        .map(|r| match r.target {
            Target::Reference(m) => m.to_string(),
            Target::Hf(h) => h.describe(),
        })
        .collect()
}
