//! Writes arbitrary bytes as `catalog/index.json` and reads it: reading must never panic,
//! only return an error.
#![no_main]

use std::sync::OnceLock;

use catalog_core::{CatalogStore, FsCatalog};
use libfuzzer_sys::fuzz_target;

/// One directory for the whole run: creating one per input would measure `mkdir`, not parsing.
fn catalog() -> &'static (tempfile::TempDir, FsCatalog) {
    static CATALOG: OnceLock<(tempfile::TempDir, FsCatalog)> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let catalog = FsCatalog::open(dir.path()).expect("a catalog");
        std::fs::create_dir_all(catalog.layout().catalog_dir()).expect("the catalog directory");
        (dir, catalog)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_, catalog) = catalog();
    std::fs::write(catalog.layout().index_path(), data).expect("write the index");
    let listed = catalog.list();
    let got = catalog.get("x");
    // An index that parses as a whole agrees with a lookup of one entry in it.
    if let (Ok(listed), Ok(got)) = (listed, got) {
        let want = listed.into_iter().find(|e| e.id == "x");
        if want.is_none() || got.is_none() {
            assert_eq!(
                got.is_some(),
                want.is_some(),
                "get(\"x\") disagrees with list"
            );
        }
    }
});
