//! The exception classes, all under `ModelProvisionerError`, and the library's errors as them:
//! by [`Error::class`], as the command line chooses its exit status.

use model_provisioner::Error;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    model_provisioner,
    ModelProvisionerError,
    PyException,
    "What every error of this package is; `hint` says what to do about it, when something can be done."
);
pyo3::create_exception!(
    model_provisioner,
    VerificationError,
    ModelProvisionerError,
    "The bytes are not the ones expected: a digest or checksum mismatch, a damaged file (the command line's exit status 3)."
);
pyo3::create_exception!(
    model_provisioner,
    UsageError,
    ModelProvisionerError,
    "The request cannot be met as written: a reference that does not parse or that no source reads, a destination that takes no model (the command line's exit status 2)."
);
pyo3::create_exception!(
    model_provisioner,
    ProvisionError,
    ModelProvisionerError,
    "Any other failure: the network, a server's refusal, the cache directory."
);

/// Adds the classes to the module, with `hint` defaulting to `None`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = py.get_type::<ModelProvisionerError>();
    base.setattr("hint", py.None())?;
    m.add("ModelProvisionerError", base)?;
    m.add("VerificationError", py.get_type::<VerificationError>())?;
    m.add("UsageError", py.get_type::<UsageError>())?;
    m.add("ProvisionError", py.get_type::<ProvisionError>())?;
    Ok(())
}

/// The error's text and its causes', as the command line prints them.
pub(crate) fn message(e: &Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// `err` with its `hint` attribute set.
fn with_hint(err: PyErr, hint: Option<&str>) -> PyErr {
    if let Some(hint) = hint {
        Python::attach(|py| {
            // Setting an attribute on a fresh exception of our own class cannot fail.
            let _ = err.value(py).setattr("hint", hint);
        });
    }
    err
}

/// The library's error as the exception of its class.
#[expect(
    clippy::needless_pass_by_value,
    reason = "made for `map_err`, which hands the error over"
)]
pub(crate) fn to_py(e: Error) -> PyErr {
    let text = message(&e);
    let err = match e.class() {
        "verification" => VerificationError::new_err(text),
        "usage" => UsageError::new_err(text),
        _ => ProvisionError::new_err(text),
    };
    with_hint(err, e.hint().as_deref())
}

/// A `UsageError` with `message` and `hint`.
pub(crate) fn usage(message: &str, hint: Option<&str>) -> PyErr {
    with_hint(UsageError::new_err(message.to_owned()), hint)
}

/// A `ProvisionError` with `message`.
pub(crate) fn provision(message: &str) -> PyErr {
    ProvisionError::new_err(message.to_owned())
}
