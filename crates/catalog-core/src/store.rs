//! The storage interface the provisioner writes through, and its read-only helpers.

use crate::entry::{CatalogEntry, Lifecycle, ResolvedModel};
use crate::error::Result;
use crate::model_ref::ModelRef;
use crate::outcome::Outcome;

/// What became of an entry's artifact when the entry was deleted.
#[derive(Debug)]
pub enum ArtifactRemoval {
    /// The artifact was inside the cache and is gone; this many bytes were freed.
    Removed {
        /// Bytes freed.
        bytes: u64,
    },
    /// The artifact is a user's file registered in place: it was left alone.
    KeptInPlace,
    /// The artifact was already missing.
    Missing,
    /// Removing it failed; the entry is gone all the same and `gc` will retry.
    Failed(crate::Error),
}

/// The result of [`CatalogStore::delete`].
#[derive(Debug)]
pub enum Deletion {
    /// No entry had that id; nothing changed.
    NotFound,
    /// The entry was removed.
    Removed {
        /// The removed entry.
        entry: Box<CatalogEntry>,
        /// What became of its artifact.
        artifact: ArtifactRemoval,
    },
}

impl Deletion {
    /// Whether an entry was removed (`false` when the id was unknown).
    pub fn existed(&self) -> bool {
        matches!(self, Deletion::Removed { .. })
    }
}

/// A catalog of models: the records behind `ensure`, `ls` and `rm`.
pub trait CatalogStore {
    /// The entry with this id.
    fn get(&self, id: &str) -> Result<Option<CatalogEntry>>;

    /// Inserts or replaces the entry with `entry.id`.
    fn put(&self, entry: CatalogEntry) -> Result<()>;

    /// Sets an entry's lifecycle; `false` when the id is unknown.
    fn set_state(&self, id: &str, state: Lifecycle) -> Result<bool>;

    /// Every entry, ordered by id.
    fn list(&self) -> Result<Vec<CatalogEntry>>;

    /// Removes the entry and, when the cache owns it, its artifact. The index is updated first,
    /// so a failed artifact removal never leaves an entry pointing at nothing.
    fn delete(&self, id: &str) -> Result<Deletion>;

    /// Whether an Active entry, not failed verification, with an artifact on disk exists for `id_or_ref`: a catalog id,
    /// or a reference whose id is computed (local paths are resolved). Writes nothing.
    fn exists(&self, id_or_ref: &str) -> Result<bool> {
        if let Some(entry) = self.get(id_or_ref)? {
            return Ok(is_usable(&entry));
        }
        match id_or_ref.parse::<ModelRef>() {
            Ok(mr) => Ok(self.locate(&mr)?.is_some()),
            Err(_) => Ok(false),
        }
    }

    /// Where an Active entry for `mr` has its artifact, if it is on disk. Writes nothing and
    /// fetches nothing; it does not hash either (that is `verify`'s job).
    fn locate(&self, mr: &ModelRef) -> Result<Option<ResolvedModel>> {
        let Ok(id) = mr.canonical_id() else {
            return Ok(None);
        };
        Ok(self.get(&id)?.filter(is_usable).map(|e| ResolvedModel {
            id: e.id,
            local_path: e.local_path,
        }))
    }
}

fn is_usable(entry: &CatalogEntry) -> bool {
    entry.lifecycle == Lifecycle::Active
        && entry.verification.outcome != Outcome::Fail
        && entry.local_path.exists()
}
