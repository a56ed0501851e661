//! Property tests: references and digests round-trip through `Display`, parsing never
//! panics, and a damaged index is refused without being written over.

use std::fs;
use std::path::Path;

use catalog_core::{CatalogStore, Digest, FsCatalog, ModelRef, SafeRelPath, Storage};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};

use crate::entry;

/// A fixed seed, so that every run tries the same cases: a failure is one a rerun shows.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x6d6f_6465_6c73),
        ..ProptestConfig::default()
    }
}

/// An org, repo or revision name: never `.` or `..`, as it cannot start with a dot.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-][A-Za-z0-9._-]{0,11}"
}

/// A path segment as `hf:` and `s3://` accept it: no `/`, `\` or control character, not `.`
/// or `..`, and (so that trimming cannot change it) no surrounding whitespace.
fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._@:+ é%-]{1,10}".prop_filter("not `.`, `..` or space-edged", |s| {
        s != "." && s != ".." && !s.starts_with(' ') && !s.ends_with(' ')
    })
}

fn segments(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..=max).prop_map(|v| v.join("/"))
}

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest::sha256_from_bytes)
}

/// A quantisation tag in its normalised (uppercase) form.
fn quant() -> impl Strategy<Value = String> {
    "[A-Z0-9][A-Z0-9_-]{0,11}"
}

/// `hf:org/repo[@rev]`, then a file path, a quantisation tag, or neither.
fn hf() -> impl Strategy<Value = String> {
    (
        name(),
        name(),
        prop::option::of(name()),
        prop_oneof![
            Just(String::new()),
            segments(3).prop_map(|p| format!("/{p}")),
            quant().prop_map(|q| format!(":{q}")),
        ],
    )
        .prop_map(|(org, repo, rev, tail)| {
            let mut s = format!("hf:{org}/{repo}");
            if let Some(rev) = rev {
                s = format!("{s}@{rev}");
            }
            format!("{s}{tail}")
        })
}

/// `file:` paths as `Display` writes them (never starting with `//`), and bare paths that
/// cannot be mistaken for a scheme.
fn file() -> impl Strategy<Value = String> {
    let path = prop_oneof![
        segments(3).prop_map(|p| format!("/{p}")),
        segments(3).prop_map(|p| format!("./{p}")),
        ("[a-z0-9_.-]{1,8}", prop::option::of(segments(2))).prop_map(|(first, rest)| {
            match rest {
                Some(rest) => format!("{first}/{rest}"),
                None => first,
            }
        }),
    ];
    (path, any::<bool>()).prop_map(
        |(p, explicit)| {
            if explicit { format!("file:{p}") } else { p }
        },
    )
}

fn http() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("https")],
        "[a-z][a-z0-9-]{0,8}(\\.[a-z]{2,5}){0,2}",
        prop::option::of(1025u16..),
        // `.` and `..` segments are resolved away, so they are not canonical.
        prop::collection::vec(
            "[A-Za-z0-9._~-]{1,8}".prop_filter("not a dot segment", |s| s != "." && s != ".."),
            0..4,
        ),
        prop::option::of("[a-z]{1,4}=[a-z0-9]{0,4}"),
    )
        .prop_map(|(scheme, host, port, path, query)| {
            let mut s = format!("{scheme}://{host}");
            if let Some(port) = port {
                s = format!("{s}:{port}");
            }
            s = format!("{s}/{}", path.join("/"));
            if let Some(q) = query {
                s = format!("{s}?{q}");
            }
            s
        })
}

fn s3() -> impl Strategy<Value = String> {
    (
        "[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]",
        segments(3),
        any::<bool>(),
    )
        .prop_map(|(bucket, key, prefix)| {
            let slash = if prefix { "/" } else { "" };
            format!("s3://{bucket}/{key}{slash}")
        })
}

fn oci() -> impl Strategy<Value = String> {
    let repo_seg = "[a-z0-9_-][a-z0-9._-]{0,8}";
    (
        // Not `docker.io`, which is written `index.docker.io` in the canonical form.
        "[a-z0-9][a-z0-9.-]{0,12}".prop_filter("docker.io is not canonical", |h| h != "docker.io"),
        prop::option::of(1u16..),
        prop::collection::vec(repo_seg, 1..4),
        prop_oneof![
            "[A-Za-z0-9_][A-Za-z0-9._-]{0,20}".prop_map(|t| format!(":{t}")),
            digest().prop_map(|d| format!("@{d}")),
        ],
        prop::option::of(prop::collection::vec(repo_seg, 1..3)),
    )
        .prop_map(|(host, port, repo, reference, file)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let file = file
                .map(|f| format!("/{}", f.join("/")))
                .unwrap_or_default();
            format!("oci://{host}{port}/{}{reference}{file}", repo.join("/"))
        })
        .prop_filter(
            "a one-segment repository on Docker Hub gets `library/`",
            |s| !s.starts_with("oci://index.docker.io/"),
        )
}

fn ollama() -> impl Strategy<Value = String> {
    (
        "[a-z0-9_-][a-z0-9._-]{0,8}",
        "[a-z0-9_-][a-z0-9._-]{0,8}",
        "[A-Za-z0-9_][A-Za-z0-9._-]{0,20}",
    )
        .prop_map(|(ns, name, tag)| format!("ollama:{ns}/{name}:{tag}"))
}

/// A reference in its canonical form, of any scheme.
fn canonical_ref() -> impl Strategy<Value = String> {
    prop_oneof![hf(), file(), http(), s3(), oci(), ollama()]
}

/// Strings that look like references: a scheme-ish prefix and a tail rich in separators,
/// escapes, whitespace and control characters, so that every parser branch is reached.
fn ref_like() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "",
        "hf:",
        "HF:",
        "hf://",
        "file:",
        "file://",
        "file:///",
        "file:////",
        "http://",
        "HTTPS://",
        "https://u:p@",
        "s3://",
        "s3:",
        "oci://",
        "oci:",
        "ollama:",
        "./",
        "/",
        "c:",
        "x-y:",
        "ftp://",
        " ",
    ]);
    let tail = prop::collection::vec(
        prop::sample::select(vec![
            "a",
            "Z",
            "0",
            "-",
            "_",
            ".",
            "..",
            "/",
            "//",
            "\\",
            "@",
            ":",
            "?",
            "#",
            "%",
            "%2F",
            "[",
            "]",
            " ",
            "\t",
            "\n",
            "\u{0}",
            "\u{1b}",
            "\u{85}",
            "é",
            "\u{a0}",
            "sha256:",
            "q4_K_m",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ]),
        0..16,
    );
    (prefix, tail).prop_map(|(p, t)| format!("{p}{}", t.concat()))
}

/// Checks what must hold for any input: no panic, and on success a stable display form.
fn check_any(s: &str) -> Result<(), TestCaseError> {
    match s.parse::<ModelRef>() {
        Ok(r) => {
            let shown = r.to_string();
            let again = shown.parse::<ModelRef>().map_err(|e| {
                TestCaseError::fail(format!(
                    "{s:?} parsed, but its display {shown:?} did not: {e}"
                ))
            })?;
            prop_assert_eq!(&again, &r, "{:?} displays as {:?}", s, shown);
            prop_assert_eq!(again.to_string(), shown);
        }
        Err(e) => {
            let text = format!("{e} {}", e.hint().unwrap_or_default());
            prop_assert!(
                !text.chars().any(char::is_control),
                "raw control character in the error for {:?}: {:?}",
                s,
                text
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn canonical_refs_round_trip(s in canonical_ref()) {
        let r: ModelRef = s.parse().map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
        prop_assert_eq!(r.to_string(), s.clone());
        prop_assert_eq!(r.to_string().parse::<ModelRef>().ok(), Some(r));
    }

    #[test]
    fn quant_tags_are_case_insensitive_and_their_id_is_the_uppercase_form(
        org in name(),
        repo in name(),
        rev in prop::option::of(name()),
        tag in "[A-Za-z0-9][A-Za-z0-9_-]{0,11}",
    ) {
        let rev = rev.map(|r| format!("@{r}")).unwrap_or_default();
        let written = format!("hf:{org}/{repo}{rev}:{tag}");
        let r: ModelRef = written.parse().map_err(|e| TestCaseError::fail(format!("{written:?}: {e}")))?;
        let id = format!("hf:{org}/{repo}{rev}:{}", tag.to_ascii_uppercase());
        prop_assert_eq!(r.syntactic_id(), Some(id.clone()));
        prop_assert_eq!(r.canonical_id().ok(), Some(id.clone()));
        prop_assert_eq!(id.parse::<ModelRef>().ok(), Some(r));
    }

    #[test]
    fn ref_like_strings_never_panic_and_round_trip_when_accepted(s in ref_like()) {
        check_any(&s)?;
    }

    #[test]
    fn arbitrary_strings_never_panic_and_round_trip_when_accepted(s in any::<String>()) {
        check_any(&s)?;
    }

    #[test]
    fn segments_joined_by_slashes_are_safe_paths_that_round_trip(p in segments(4)) {
        let safe: SafeRelPath = p.parse().map_err(|e| TestCaseError::fail(format!("{p:?}: {e}")))?;
        prop_assert_eq!(safe.to_string(), p.clone());
        prop_assert_eq!(safe.to_string().parse::<SafeRelPath>().ok(), Some(safe));
    }

    #[test]
    fn accepted_paths_stay_under_their_directory(s in prop_oneof![
        any::<String>(),
        "[a./\\\\\u{0}-]{0,12}",
    ]) {
        // Never a panic; what is accepted round-trips and joins as plain names only.
        if let Ok(safe) = s.parse::<SafeRelPath>() {
            prop_assert_eq!(safe.as_str(), s.as_str());
            prop_assert!(safe.as_path().components().all(|c| matches!(c, std::path::Component::Normal(_))));
            prop_assert!(!s.contains('\\'));
        }
    }

    #[test]
    fn digests_round_trip(d in digest()) {
        let shown = d.to_string();
        prop_assert_eq!(shown.parse::<Digest>().ok(), Some(d.clone()));
        prop_assert_eq!(shown.len(), "sha256:".len() + 64);
    }

    #[test]
    fn digests_accept_any_letter_case(d in digest(), upper in prop::collection::vec(any::<bool>(), 71)) {
        let mixed: String = d
            .to_string()
            .chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        prop_assert_eq!(mixed.parse::<Digest>().ok(), Some(d));
    }

    #[test]
    fn arbitrary_strings_never_panic_as_digests(
        s in prop_oneof![any::<String>(), "(sha256|SHA256|md5)?:?[0-9a-fA-FxZé\u{0}]{0,70}"]
    ) {
        if let Ok(d) = s.parse::<Digest>() {
            prop_assert_eq!(d.to_string(), s.to_ascii_lowercase());
        }
    }
}

#[test]
fn file_refs_with_extra_leading_slashes_round_trip() {
    let failures: Vec<String> = ["file:////", "file:////x", "file://///x"]
        .into_iter()
        .filter_map(|s| check_any(s).err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn each_hand_made_index_shape_agrees_between_lookup_and_listing() {
    let failures: Vec<String> = [Damage::DuplicateKey, Damage::ForeignKey, Damage::KeyIsNotId]
        .into_iter()
        .filter_map(|d| {
            damaged(&d)
                .and_then(|bytes| check_lookup_agrees(&bytes))
                .err()
                .map(|e| format!("{d:?}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// An index as this build writes it, holding entries with the given ids.
fn valid_index(ids: &[String]) -> Result<Vec<u8>, TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let catalog = FsCatalog::open(dir.path()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for id in ids {
        catalog
            .put(entry(id, Path::new("/m"), Storage::InPlace))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    fs::read(catalog.layout().index_path()).map_err(|e| TestCaseError::fail(e.to_string()))
}

/// What a damaged index is made of: random bytes, a valid index with a few bytes changed, or
/// a valid index with a hand-made addition that still parses.
#[derive(Debug, Clone)]
enum Damage {
    Random(Vec<u8>),
    Edits(Vec<(prop::sample::Index, Option<u8>)>),
    /// The entry `x` again, later in the file, with another size (JSON allows duplicate keys).
    DuplicateKey,
    /// A top-level key after `entries` holding an entry-shaped object keyed `x`.
    ForeignKey,
    /// The entry under the key `x` says its id is `elsewhere`.
    KeyIsNotId,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Damage::Random),
        prop::collection::vec((any::<prop::sample::Index>(), any::<Option<u8>>()), 1..4)
            .prop_map(Damage::Edits),
    ]
}

const IDS: [&str; 2] = ["x", "file:/m/a b"];

fn damaged(damage: &Damage) -> Result<Vec<u8>, TestCaseError> {
    let ids: Vec<String> = IDS.iter().map(|s| (*s).to_owned()).collect();
    let valid = valid_index(&ids)?;
    let text = || String::from_utf8(valid.clone()).map_err(|e| TestCaseError::fail(e.to_string()));
    let x_entry = || -> Result<String, TestCaseError> {
        let mut e = entry("x", Path::new("/elsewhere"), Storage::InPlace);
        e.size_bytes = 42;
        serde_json::to_string_pretty(&e).map_err(|e| TestCaseError::fail(e.to_string()))
    };
    Ok(match damage {
        Damage::Random(b) => b.clone(),
        Damage::Edits(edits) => {
            let mut b = valid;
            for (at, byte) in edits {
                let i = at.index(b.len());
                match byte {
                    Some(v) => b[i] = *v,
                    None => {
                        b.remove(i);
                    }
                }
            }
            b
        }
        Damage::DuplicateKey => {
            let t = text()?;
            let end = t
                .rfind("\n  }\n}")
                .ok_or_else(|| TestCaseError::fail("no end"))?;
            format!("{},\n    \"x\": {}{}", &t[..end], x_entry()?, &t[end..]).into_bytes()
        }
        Damage::KeyIsNotId => text()?
            .replacen("\"id\": \"x\"", "\"id\": \"elsewhere\"", 1)
            .into_bytes(),
        Damage::ForeignKey => {
            let t = text()?;
            let end = t
                .rfind("\n}")
                .ok_or_else(|| TestCaseError::fail("no end"))?;
            format!(
                "{},\n  \"extra\": {{\n    \"ghost\": {}\n  }}{}",
                &t[..end],
                x_entry()?.replace("\"x\"", "\"ghost\""),
                &t[end..]
            )
            .into_bytes()
        }
    })
}

/// A catalog whose index holds `bytes`.
fn catalog_with_index(bytes: &[u8]) -> Result<(tempfile::TempDir, FsCatalog), TestCaseError> {
    let fail = |e: &dyn std::fmt::Display| TestCaseError::fail(e.to_string());
    let dir = tempfile::tempdir().map_err(|e| fail(&e))?;
    let catalog = FsCatalog::open(dir.path()).map_err(|e| fail(&e))?;
    fs::create_dir_all(catalog.layout().catalog_dir()).map_err(|e| fail(&e))?;
    fs::write(catalog.layout().index_path(), bytes).map_err(|e| fail(&e))?;
    Ok((dir, catalog))
}

fn check_refusal(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (_dir, catalog) = catalog_with_index(bytes)?;
    let index = catalog.layout().index_path();
    let listed = catalog.list();
    for id in IDS {
        // Only that it returns: `get` may find one entry in an index `list` refuses.
        let _ = catalog.get(id);
    }
    let put = catalog.put(entry("new", Path::new("/new"), Storage::InPlace));
    match (&listed, &put) {
        (Err(_), Ok(())) => {
            return Err(TestCaseError::fail(
                "`put` wrote over an index that `list` refused",
            ));
        }
        (_, Err(_)) => {
            let now = fs::read(&index).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(now == bytes, "a refused `put` changed the index");
        }
        (Ok(_), Ok(())) => {
            let after = catalog
                .list()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(after.iter().any(|e| e.id == "new"));
        }
    }
    Ok(())
}

/// When the whole index parses, looking up one entry agrees with the listing: every listed
/// entry is found under its id, and an id that is not listed is not found.
fn check_lookup_agrees(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (_dir, catalog) = catalog_with_index(bytes)?;
    let Ok(listed) = catalog.list() else {
        return Ok(());
    };
    for e in &listed {
        let got = catalog.get(&e.id).ok().flatten();
        prop_assert_eq!(
            got.as_ref(),
            Some(e),
            "get({:?}) disagrees with list",
            &e.id
        );
    }
    for id in IDS.into_iter().chain(["ghost"]) {
        let want = listed.iter().find(|e| e.id == id);
        let got = catalog.get(id).ok().flatten();
        prop_assert_eq!(got.as_ref(), want, "get({:?}) disagrees with list", id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_damaged_index_never_panics_and_is_never_written_over(d in damage()) {
        check_refusal(&damaged(&d)?)?;
    }

    #[test]
    fn looking_up_one_entry_agrees_with_the_listing(
        d in prop_oneof![
            damage(),
            Just(Damage::DuplicateKey),
            Just(Damage::ForeignKey),
            Just(Damage::KeyIsNotId),
        ]
    ) {
        check_lookup_agrees(&damaged(&d)?)?;
    }
}
