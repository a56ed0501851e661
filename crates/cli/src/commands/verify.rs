//! `verify`: models hashed again, one line (or object) each.

use std::process::ExitCode;

use catalog_core::{CatalogStore, Outcome};
use model_provisioner::{DigestMismatch, Error};
use serde::Serialize;

use super::{Context, Provisioner};
use crate::cli::VerifyArgs;
use crate::output::{outcome_text, print, print_json};

/// One line of `verify --json`.
#[derive(Serialize)]
struct VerifyJson {
    id: String,
    verification: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    computed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(super) fn verify(cx: &Context, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let provisioner = cx.provisioner()?;
    let targets: Vec<String> = if args.all {
        provisioner
            .catalog()
            .list()?
            .into_iter()
            .map(|e| e.id)
            .collect()
    } else {
        args.targets.clone()
    };
    let (mut failed, mut errors) = (0, 0);
    let mut results = Vec::with_capacity(targets.len());
    for target in &targets {
        let result = verify_one(&provisioner, target, &mut failed, &mut errors);
        if !args.json {
            print(&verify_line(&result))?;
        }
        results.push(result);
    }
    if args.json {
        print_json(&results)?;
    } else if targets.is_empty() {
        print("no models in the catalog\n")?;
    }
    if failed > 0 {
        say!(
            "error: {failed} of {} model(s) failed verification",
            targets.len()
        );
        say!(
            "hint: fetch them again with `model-provisioner ensure`, or remove them with `model-provisioner rm`"
        );
        return Ok(ExitCode::from(crate::EXIT_VERIFY_FAILED));
    }
    if errors > 0 {
        // One model's error is already said; a count adds nothing.
        if targets.len() > 1 {
            say!(
                "error: {errors} of {} model(s) could not be verified",
                targets.len()
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies one model, counting failed verifications and other errors (printed to stderr).
fn verify_one(
    provisioner: &Provisioner,
    target: &str,
    failed: &mut usize,
    errors: &mut usize,
) -> VerifyJson {
    match provisioner.verify(target) {
        Ok(v) => VerifyJson {
            id: v.entry.id.clone(),
            verification: Some(v.entry.verification.outcome),
            expected: v
                .entry
                .digest
                .as_ref()
                .or(v.entry.source_digest.as_ref())
                .map(ToString::to_string),
            computed: v
                .entry
                .verification
                .computed
                .as_ref()
                .map(ToString::to_string),
            bytes: Some(v.bytes),
            error: None,
        },
        Err(Error::DigestMismatch(DigestMismatch {
            id,
            expected,
            computed,
        })) => {
            *failed += 1;
            VerifyJson {
                id,
                verification: Some(Outcome::Fail),
                expected: Some(expected.to_string()),
                computed: Some(computed.to_string()),
                bytes: None,
                error: None,
            }
        }
        Err(Error::Structure { id, problems }) => {
            *failed += 1;
            let e = Error::Structure {
                id: id.clone(),
                problems,
            };
            VerifyJson {
                id,
                verification: Some(Outcome::Fail),
                expected: None,
                computed: None,
                bytes: None,
                error: Some(e.to_string()),
            }
        }
        Err(e) => {
            *errors += 1;
            let hint = e.hint();
            let message = format!("{:#}", anyhow::Error::from(e));
            say!("error: {message}");
            if let Some(hint) = hint {
                say!("hint: {hint}");
            }
            VerifyJson {
                id: target.to_owned(),
                verification: None,
                expected: None,
                computed: None,
                bytes: None,
                error: Some(message),
            }
        }
    }
}

fn verify_line(r: &VerifyJson) -> String {
    match (r.verification, &r.error) {
        (Some(Outcome::Fail), Some(reason)) => format!("FAIL        {reason}\n"),
        // The reason went to stderr already.
        (_, Some(_)) => format!("error       {}\n", r.id),
        (Some(Outcome::Fail), _) => format!(
            "FAIL        {}: expected `{}`, computed `{}`\n",
            r.id,
            r.expected.as_deref().unwrap_or_default(),
            r.computed.as_deref().unwrap_or_default()
        ),
        (Some(outcome), _) => format!(
            "{:<12}{} ({})\n",
            outcome_text(outcome),
            r.id,
            r.computed.as_deref().unwrap_or_default()
        ),
        (None, None) => String::new(),
    }
}
