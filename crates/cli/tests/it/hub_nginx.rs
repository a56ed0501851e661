//! `ensure hf:org/repo` and the real `hf download` against a Hub-shaped nginx
//! ([`test_support::HubNginx`]): the revision and tree APIs, small files answered with a git
//! blob id, LFS files redirected to a blob host under another name. Correctness only; the
//! speed is `mp-bench-hf`'s business.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use test_support::{HfRepoBuilder, HubNginx, HubRequest, TINY_LLAMA, assert_holds};

use crate::fixture::{Fixture, TestResult, assert_code, run_within, str_field};

/// A token only this test uses, to see where it is sent.
const TOKEN: &str = "hf_hub_nginx_fixture_token";

/// Each shard: large enough for several reads, small enough for a debug build.
const SHARD: usize = 3 << 20;

/// How long one run may take: `hf` is a Python process, slow to start on a busy machine.
const LIMIT: Duration = Duration::from_secs(60);

fn describe(log: &[HubRequest]) -> String {
    log.iter().fold(String::new(), |mut s, r| {
        let _ = writeln!(
            s,
            "{} {}{} {} {} auth={}",
            r.method, r.host, r.uri, r.status, r.body_bytes, r.authorization
        );
        s
    })
}

#[test]
fn ours_and_hf_download_get_the_same_files_and_the_token_stays_on_the_hub() -> TestResult {
    let fixture = HfRepoBuilder::tiny_llama_sized(SHARD);
    let hub = HubNginx::start_with_files(&[(TINY_LLAMA, fixture.files())]);
    let repo = hub.repo(TINY_LLAMA);
    let expected: BTreeMap<String, Vec<u8>> = repo.contents();
    assert!(expected.contains_key(".gitattributes"));
    let lfs: Vec<_> = repo.files().iter().filter(|f| f.lfs).collect();
    assert_eq!(lfs.len(), 2, "both shards are LFS files");

    // Ours, with a token.
    let fx = Fixture::new()?;
    let mut ours = fx.command(["ensure", &format!("hf:{TINY_LLAMA}"), "--json"]);
    ours.env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", fx.path("hf-home"))
        .env("HF_TOKEN", TOKEN);
    let out = run_within(&mut ours, LIMIT);
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    // No `--digest`, but every file matched the digest the Hub states for it.
    assert_eq!(str_field(&json, "verification"), "pass", "{json:#}");
    assert_holds(Path::new(str_field(&json, "local_path")), &expected);
    let entry = fx.entry(&format!("hf:{TINY_LLAMA}"))?;
    assert_eq!(entry["provenance"]["resolved_revision"], repo.commit());
    for file in repo.files() {
        let recorded = entry["provenance"]["files"]
            .as_array()
            .ok_or("no provenance files")?
            .iter()
            .find(|f| f["path"] == file.path.as_str())
            .ok_or_else(|| format!("{} not recorded: {entry:#}", file.path))?;
        assert_eq!(recorded["digest"], format!("sha256:{}", file.sha256));
    }

    let log = hub.requests_of_at_least(1);
    let seen = describe(&log);
    for f in &lfs {
        // Each LFS file came from the blob host, whole, after a 302 from the Hub.
        let sent = hub.bytes_sent(&format!("/lfs/{}", f.sha256));
        assert!(sent >= f.size, "{} from the blob host:\n{seen}", f.path);
        assert!(
            log.iter().any(|r| r.host == "127.0.0.1"
                && r.status == 302
                && r.uri
                    .ends_with(&format!("/resolve/{}/{}", repo.commit(), f.path))),
            "no redirect for {}:\n{seen}",
            f.path
        );
    }
    for r in &log {
        match r.host.as_str() {
            // The token goes to the Hub, so that its absence below means something...
            "127.0.0.1" => assert!(r.authorization, "no token sent to the Hub:\n{seen}"),
            // ...and never to the blob host.
            "localhost" => assert!(!r.authorization, "the token reached the blob host:\n{seen}"),
            other => panic!("a request for host {other}:\n{seen}"),
        }
    }

    // The real `hf download`, into its own cache: the same files.
    hub.clear_log();
    let cache = hub.scratch_dir("hf-cache");
    let snapshot = hub.hf_download(&[TINY_LLAMA, "--cache-dir", cache.to_str().ok_or("utf-8")?]);
    assert!(snapshot.ends_with(repo.commit()), "{}", snapshot.display());
    assert_holds(&snapshot, &expected);
    let log = hub.requests_of_at_least(1);
    let seen = describe(&log);
    // What `hf` asked: the revision, the tree, each file's HEAD, the blobs on the other host.
    assert!(
        log.iter()
            .any(|r| r.uri == format!("/api/models/{TINY_LLAMA}/revision/main") && r.status == 200),
        "{seen}"
    );
    assert!(
        log.iter().any(
            |r| r.uri == format!("/api/models/{TINY_LLAMA}/tree/{}", repo.commit())
                && r.status == 200
        ),
        "{seen}"
    );
    for f in &lfs {
        assert!(
            log.iter()
                .any(|r| r.host == "localhost" && r.uri == format!("/lfs/{}", f.sha256)),
            "hf did not follow the redirect for {}:\n{seen}",
            f.path
        );
    }
    assert!(log.iter().all(|r| r.status < 400), "{seen}");
    Ok(())
}

/// An LFS file is content-addressed: a partial download of its bytes, left by a run that
/// fetched them from somewhere else (another mirror, an older commit's URL), is named and
/// vouched for by its sha256, so the next run sends for the rest only.
#[test]
fn a_partial_lfs_file_resumes_by_its_sha256_whatever_location_it_came_from() -> TestResult {
    let fixture = HfRepoBuilder::tiny_llama_sized(SHARD);
    let hub = HubNginx::start_with_files(&[(TINY_LLAMA, fixture.files())]);
    let repo = hub.repo(TINY_LLAMA);
    let shard = repo
        .files()
        .iter()
        .find(|f| f.lfs)
        .ok_or("an LFS shard")?
        .clone();
    let bytes = std::fs::read(&shard.source)?;
    let half = bytes.len() as u64 / 2;
    let prefix = &bytes[..usize::try_from(half)?];

    // What a run killed half-way through a download from another host leaves in `tmp/`.
    let fx = Fixture::new()?;
    let tmp = fx.cache().join("tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::write(tmp.join(format!("dl-{}.part", shard.sha256)), prefix)?;
    let state = serde_json::json!({
        "url": "https://mirror.invalid/blobs/elsewhere",
        "digest": format!("sha256:{}", shard.sha256),
        "total": bytes.len(),
        "validators": {"etag": "\"another-etag\"", "last_modified": null},
        "prefix_len": half,
        "prefix_sha256": catalog_core::Digest::sha256_of(prefix).value(),
        "chunks": [],
    });
    std::fs::write(
        tmp.join(format!("dl-{}.state", shard.sha256)),
        serde_json::to_vec(&state)?,
    )?;

    let reference = format!("hf:{TINY_LLAMA}/{}", shard.path);
    let mut ours = fx.command(["ensure", &reference, "--json"]);
    ours.env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", fx.path("hf-home"));
    let out = run_within(&mut ours, LIMIT);
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(std::fs::read(str_field(&json, "local_path"))?, bytes);
    let log = hub.requests_of_at_least(1);
    let blob_gets: Vec<_> = log
        .iter()
        .filter(|r| r.method == "GET" && r.host == "localhost")
        .collect();
    let sent: u64 = blob_gets.iter().map(|r| r.body_bytes).sum();
    assert_eq!(sent, bytes.len() as u64 - half, "{}", describe(&log));
    assert!(
        blob_gets
            .iter()
            .all(|r| r.range.as_deref() == Some(&format!("bytes={half}-")[..])),
        "{}",
        describe(&log)
    );
    assert_eq!(crate::fixture::u64_field(&json, "bytes_read"), sent);
    Ok(())
}
