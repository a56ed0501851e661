//! `ls`, `show`, `retire`, `rm` and `gc`: the catalog as it is, and what leaves it.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use catalog_core::{ArtifactRemoval, CatalogEntry, CatalogStore, Deletion, FsCatalog, Lifecycle};
use model_provisioner::Error;
use serde::Serialize;

use super::Context;
use crate::cli::GcArgs;
use crate::output::{entries_table, entry_details, human_bytes, print, print_json};

pub(super) fn ls(cx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let entries = FsCatalog::open(&cx.cache_dir)?.list()?;
    if json {
        print_json(&entries)?;
    } else {
        print(&entries_table(&entries))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn show(cx: &Context, target: &str, json: bool) -> anyhow::Result<ExitCode> {
    let entry = cx.provisioner()?.find(target)?;
    if json {
        print_json(&entry)?;
    } else {
        print(&entry_details(&entry))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn retire(cx: &Context, target: &str) -> anyhow::Result<ExitCode> {
    let provisioner = cx.provisioner()?;
    let entry = provisioner.find(target)?;
    provisioner
        .catalog()
        .set_state(&entry.id, Lifecycle::Retired)?;
    print(&format!("retired {}\n", entry.id))?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn rm(cx: &Context, target: &str) -> anyhow::Result<ExitCode> {
    let provisioner = cx.provisioner()?;
    let CatalogEntry { id, .. } = provisioner.find(target)?;
    let Deletion::Removed { entry, artifact } = provisioner.catalog().delete(&id)? else {
        return Err(Error::UnknownId { id }.into());
    };
    let detail = match artifact {
        ArtifactRemoval::Removed { bytes } => format!(
            "deleted its files from the cache, {} freed",
            human_bytes(bytes)
        ),
        ArtifactRemoval::KeptInPlace => {
            format!("left your file `{}` in place", entry.local_path.display())
        }
        ArtifactRemoval::Missing => "its files were already gone".to_owned(),
        ArtifactRemoval::Failed(e) => {
            print(&format!("removed {id}\n"))?;
            return Err(anyhow::Error::from(e).context(format!(
                "removed `{id}` from the catalog, but its files could not be deleted (`model-provisioner gc` will retry)"
            )));
        }
    };
    print(&format!("removed {id}; {detail}\n"))?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn gc(cx: &Context, args: &GcArgs) -> anyhow::Result<ExitCode> {
    let catalog = FsCatalog::open(&cx.cache_dir)?;
    let report = catalog
        .gc(args.dry_run)
        .context("garbage collection failed")?;
    if args.json {
        #[derive(Serialize)]
        struct GcJson<'a> {
            dry_run: bool,
            removed: Vec<&'a std::path::Path>,
            bytes: u64,
        }
        print_json(&GcJson {
            dry_run: args.dry_run,
            removed: report.removed.iter().map(|(p, _)| p.as_path()).collect(),
            bytes: report.bytes(),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut text = String::new();
    for (path, size) in &report.removed {
        let _ = writeln!(text, "{verb} {} ({})", path.display(), human_bytes(*size));
    }
    let _ = writeln!(
        text,
        "{verb} {} item(s), {}",
        report.removed.len(),
        human_bytes(report.bytes())
    );
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}
