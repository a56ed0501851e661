//! How results are printed: text for people, JSON for scripts.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use catalog_core::{CatalogEntry, ModelFormat, ModelInfo, Outcome, human_count};
use serde::Serialize;

/// Writes `text` to stdout. A closed pipe (`… | head`) is not an error.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes `value` as pretty JSON and a newline.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(print(&text)?)
}

/// `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An RFC 3339 UTC time from ms since the epoch.
pub fn timestamp(ms: u64) -> String {
    let secs = (UNIX_EPOCH + Duration::from_millis(ms))
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The verification column: `pass`, `warn`, `FAIL`: the words of `--json`, a failure in
/// capitals so that it stands out in a table.
pub fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "pass",
        Outcome::Warn => "warn",
        Outcome::Fail => "FAIL",
    }
}

/// The `ls` table.
pub fn entries_table(entries: &[CatalogEntry]) -> String {
    if entries.is_empty() {
        return "no models in the catalog\n".to_owned();
    }
    let dash = || "-".to_owned();
    let rows: Vec<[String; 9]> = entries
        .iter()
        .map(|e| {
            let info = e.model_info.as_ref();
            let format = match info.map(|i| i.format) {
                None | Some(ModelFormat::Unknown) => dash(),
                Some(f) => f.to_string(),
            };
            [
                e.id.clone(),
                e.lifecycle.to_string(),
                outcome_text(e.verification.outcome).to_owned(),
                format,
                info.and_then(|i| i.architecture.clone())
                    .unwrap_or_else(dash),
                info.and_then(|i| i.parameters)
                    .map_or_else(dash, human_count),
                info.and_then(|i| i.quantization.clone())
                    .unwrap_or_else(dash),
                human_bytes(e.size_bytes),
                e.local_path.display().to_string(),
            ]
        })
        .collect();
    let header = [
        "ID", "STATE", "VERIFIED", "FORMAT", "ARCH", "PARAMS", "QUANT", "SIZE", "PATH",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  "));
    }
    out
}

/// The `show` text.
pub fn entry_details(e: &CatalogEntry) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{k:<14}{v}");
    };
    field("id:", &e.id);
    field("source:", &e.source);
    field("path:", &e.local_path.display());
    field("state:", &e.lifecycle);
    field(
        "storage:",
        &match e.storage {
            catalog_core::Storage::InPlace => "in place (never deleted by model-provisioner)",
            catalog_core::Storage::Cache => "in the cache",
        },
    );
    field(
        "size:",
        &format!("{} ({} bytes)", human_bytes(e.size_bytes), e.size_bytes),
    );
    field("verification:", &outcome_text(e.verification.outcome));
    if let Some(info) = &e.model_info {
        model_info_fields(info, &mut field);
    }
    if let Some(d) = &e.digest {
        field("expected:", d);
    }
    if let Some(d) = &e.source_digest {
        field("from source:", d);
    }
    if let Some(d) = &e.verification.computed {
        // A failed check keeps the digest the bytes had before, to compare with next time:
        // with no digest given, that is what is expected of them, not what was computed.
        let kept = e.verification.outcome == Outcome::Fail
            && e.digest.is_none()
            && e.source_digest.is_none();
        if kept {
            field("expected:", &format!("{d} (recorded by an earlier check)"));
        } else {
            field("computed:", d);
        }
    }
    if let Some(ms) = e.last_verified_ms {
        field("verified at:", &timestamp(ms));
    }
    if let Some(s) = &e.signature {
        let signer = s.signer.as_deref().unwrap_or("no signer named");
        field("signature:", &format!("{} ({signer})", s.outcome));
        if let Some(policy) = &s.policy {
            field("signed as:", policy);
        }
        if let Some(detail) = &s.detail {
            field("signature says:", detail);
        }
    }
    field("added:", &timestamp(e.created_ms));
    field("updated:", &timestamp(e.updated_ms));
    if let Some(p) = &e.provenance {
        field("fetcher:", &format!("{} {}", p.fetcher, p.fetcher_version));
        if let Some(origin) = &p.origin {
            let label = match p.fetcher.as_str() {
                "oci" => "registry:",
                "s3" => "endpoint:",
                _ => "origin:",
            };
            field(label, origin);
        }
        if let Some(rev) = &p.resolved_revision {
            // For a registry, what the tag resolved to: the manifest's digest.
            let label = if p.fetcher == "oci" {
                "manifest:"
            } else {
                "revision:"
            };
            field(label, rev);
        }
        for f in &p.files {
            let digest = f
                .digest
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let media_type = f
                .media_type
                .as_ref()
                .map(|m| format!(" {m}"))
                .unwrap_or_default();
            field(
                "file:",
                &format!("{} ({}) {digest}{media_type}", f.path, human_bytes(f.size)),
            );
        }
    }
    out
}

/// The `show` lines of what a model is.
fn model_info_fields(info: &ModelInfo, field: &mut dyn FnMut(&str, &dyn std::fmt::Display)) {
    field("format:", &info.format);
    if let Some(a) = &info.architecture {
        field("architecture:", a);
    }
    if let Some(n) = &info.name {
        field("name:", n);
    }
    if let Some(p) = info.parameters {
        field("parameters:", &format!("{} ({p})", human_count(p)));
    }
    if let Some(q) = &info.quantization {
        field("quantization:", q);
    }
    if let Some(c) = info.context_length {
        field("context:", &format!("{c} tokens"));
    }
    if let Some(t) = info.tensor_count {
        let dtypes: Vec<String> = info
            .dtypes
            .iter()
            .map(|(d, n)| format!("{d} {n}"))
            .collect();
        if dtypes.is_empty() {
            field("tensors:", &t);
        } else {
            field("tensors:", &format!("{t} ({})", dtypes.join(", ")));
        }
    }
    if let Some(split) = &info.split {
        field(
            "split:",
            &format!("{} files: {}", split.count, split.files.join(", ")),
        );
    }
    let structure = match info.structure.outcome {
        Outcome::Pass => "pass (headers and sizes)",
        Outcome::Warn => "not checked (no file in a format this build reads)",
        Outcome::Fail => "FAIL",
    };
    field("structure:", &structure);
    for p in &info.structure.problems {
        field("problem:", p);
    }
    for w in &info.warnings {
        field("warning:", w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_795_640_400_000), "2026-11-25T21:00:00Z");
    }
}
