"""The package against a real nginx on loopback and local files."""

import _thread
import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

import model_provisioner as mp
from conftest import resume_state

TINY = Path(__file__).resolve().parents[3] / "examples" / "tiny.gguf"
TINY_DIGEST = "sha256:197f36c37a8d66ba7366ae25ab40fb922d6ed8881cecc06eddacedc11699e50f"


def wait_for(what, check, timeout=30.0):
    """Polls `check` (a file or a flag another thread sets) until it is true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_ensure_downloads_from_nginx_and_verifies(nginx, cache):
    data = os.urandom(3 << 20)
    digest = nginx.put("model.bin", data)
    m = mp.ensure(nginx.url("files/model.bin"), digest=digest, cache_dir=cache)
    assert isinstance(m.local_path, Path)
    assert m.local_path.read_bytes() == data
    assert m.digest == digest
    assert m.verification == "pass"
    assert (m.bytes, m.bytes_read, m.cached) == (len(data), len(data), False)
    again = mp.ensure(nginx.url("files/model.bin"), cache_dir=str(cache))
    assert again.cached and again.id == m.id


def test_cache_dir_defaults_to_the_environment(cache, monkeypatch):
    monkeypatch.setenv("MODEL_PROVISIONER_CACHE", str(cache))
    m = mp.ensure(str(TINY), digest=TINY_DIGEST)
    assert [e["id"] for e in mp.ls()] == [m.id]
    assert mp.ls(cache_dir=cache)[0]["id"] == m.id


def test_a_wrong_digest_is_a_verification_error(cache):
    with pytest.raises(mp.VerificationError) as caught:
        mp.ensure(str(TINY), digest="sha256:" + "0" * 64, cache_dir=cache)
    assert isinstance(caught.value, mp.ModelProvisionerError)
    assert "digest mismatch" in str(caught.value)
    assert TINY_DIGEST in str(caught.value)
    assert caught.value.hint
    assert mp.ls(cache_dir=cache) == [] or all(
        e["lifecycle"] != "active" for e in mp.ls(cache_dir=cache)
    )


def test_a_bad_reference_is_a_usage_error(cache):
    with pytest.raises(mp.UsageError) as caught:
        mp.ensure("hf:", cache_dir=cache)
    assert "invalid model reference" in str(caught.value)
    assert caught.value.hint
    with pytest.raises(mp.UsageError):
        mp.ensure(str(TINY), digest="md5:abc", cache_dir=cache)
    with pytest.raises(mp.UsageError, match="revision"):
        mp.ensure(str(TINY), revision="main", cache_dir=cache)
    with pytest.raises(mp.UsageError, match="already pins"):
        mp.ensure("hf:org/repo@v1/m.gguf", revision="v2", cache_dir=cache)
    with pytest.raises(mp.UsageError, match="include"):
        mp.ensure(str(TINY), include=["*.gguf"], cache_dir=cache)


def test_other_failures_are_provision_errors(nginx, cache):
    with pytest.raises(mp.ProvisionError) as caught:
        mp.ensure(nginx.url("files/absent.bin"), cache_dir=cache)
    assert "404" in str(caught.value) or "not found" in str(caught.value)
    with pytest.raises(mp.ProvisionError):
        mp.show("file:/nowhere", cache_dir=cache)


def test_ls_show_and_verify_report_the_catalog(cache, tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(TINY.read_bytes())
    m = mp.ensure(str(model), cache_dir=cache)
    assert m.verification == "warn", "nothing vouched for the bytes"
    entries = mp.ls(cache_dir=cache)
    assert [e["id"] for e in entries] == [m.id]
    shown = mp.show(m.id, cache_dir=cache)
    assert shown["id"] == m.id and shown["local_path"] == str(model)
    assert shown["model_info"]["format"] == "gguf"
    [outcome] = mp.verify(cache_dir=cache)
    assert (outcome["id"], outcome["verification"], outcome["error"]) == (m.id, "warn", None)
    assert outcome["computed"] == TINY_DIGEST
    # The file changes under the catalog: the next verify says so, and does not raise.
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    [outcome] = mp.verify([m.id], cache_dir=cache)
    assert outcome["verification"] == "fail"
    assert outcome["expected"] == TINY_DIGEST
    [unknown] = mp.verify(["file:/nowhere"], cache_dir=cache)
    assert unknown["verification"] is None and "no model" in unknown["error"]


def test_progress_events_arrive_in_order_on_the_calling_thread(nginx, cache):
    digest = nginx.put("model.bin", os.urandom(2 << 20))
    events, threads = [], set()

    def on_progress(event):
        events.append(event)
        threads.add(threading.get_ident())

    m = mp.ensure(nginx.url("files/model.bin"), digest=digest, cache_dir=cache,
                  on_progress=on_progress)
    assert threads == {threading.get_ident()}
    assert all(e["v"] == 1 for e in events)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "resolved" and kinds[-1] == "done", kinds
    for earlier, later in [("resolved", "file_started"), ("file_started", "file_done"),
                           ("file_done", "published"), ("published", "done")]:
        assert kinds.index(earlier) < kinds.index(later), kinds
    done = events[-1]
    assert (done["id"], done["verification"], done["local_path"]) == (
        m.id, "pass", str(m.local_path))


def test_an_exception_in_on_progress_is_raised_from_the_call(nginx, cache):
    digest = nginx.put("model.bin", os.urandom(1 << 20))

    def on_progress(event):
        raise ValueError("no thanks")

    with pytest.raises(ValueError, match="no thanks"):
        mp.ensure(nginx.url("files/model.bin"), digest=digest, cache_dir=cache,
                  on_progress=on_progress)
    # The process and the package carry on.
    assert mp.ensure(nginx.url("files/model.bin"), digest=digest, cache_dir=cache).verification == "pass"


def test_other_threads_run_while_bytes_move(nginx, cache):
    # 4 MiB at 2 MiB/s: about two seconds of download.
    digest = nginx.put("model.bin", os.urandom(4 << 20))
    returned = threading.Event()
    seen = {}

    def watch():
        # A Python thread that needs the GIL, run while the download is in flight: it sees
        # the partial file, which exists only until the call returns.
        wait_for("the partial file", lambda: returned.is_set() or any((cache / "tmp").glob("dl-*.part")))
        seen["during"] = not returned.is_set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    m = mp.ensure(nginx.url("slow/model.bin"), digest=digest, cache_dir=cache)
    returned.set()
    watcher.join()
    assert m.verification == "pass"
    assert seen["during"], "no other thread ran during the download"


def test_ctrl_c_stops_a_download_which_the_next_call_resumes(nginx, cache):
    # 8 MiB at 2 MiB/s: four seconds, unless interrupted; the first 4 MiB piece is on disk and
    # in the resume record after about two.
    data = os.urandom(8 << 20)
    digest = nginx.put("model.bin", data)
    interrupted = {}

    def interrupt():
        wait_for("bytes on disk in the resume record",
                 lambda: (resume_state(cache) or {}).get("prefix_len", 0) > 0)
        interrupted["at"] = time.monotonic()
        _thread.interrupt_main()

    # A process started in the background by a non-interactive shell (as CI runs the tests)
    # inherits SIGINT ignored, and Python then neither installs its handler nor raises on
    # `interrupt_main`: install it for this test, as an interactive session has it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    helper = threading.Thread(target=interrupt)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            mp.ensure(nginx.url("slow/model.bin"), digest=digest, cache_dir=cache)
    finally:
        signal.signal(signal.SIGINT, previous)
    stopped = time.monotonic()
    helper.join()
    assert stopped - interrupted["at"] < 3.0, "the download did not stop promptly"
    kept = resume_state(cache)["prefix_len"]
    assert 0 < kept < len(data)
    # The partial file is named after the URL: the same one resumes it.
    m = mp.ensure(nginx.url("slow/model.bin"), digest=digest, cache_dir=cache)
    assert m.verification == "pass"
    assert m.bytes_read <= len(data) - kept, "the kept bytes were fetched again"
    assert hashlib.sha256(m.local_path.read_bytes()).hexdigest() == digest.split(":")[1]


def test_push_refuses_a_destination_that_takes_no_model(cache):
    m = mp.ensure(str(TINY), digest=TINY_DIGEST, cache_dir=cache)
    with pytest.raises(mp.UsageError) as caught:
        mp.push(m.id, "https://example.invalid/models/", cache_dir=cache)
    assert caught.value.hint is None or isinstance(caught.value.hint, str)
    with pytest.raises(mp.UsageError):
        mp.push(m.id, "not a reference::", cache_dir=cache)
    with pytest.raises(mp.ProvisionError, match="no model"):
        mp.push("file:/nowhere", "oci://127.0.0.1:1/m:1", cache_dir=cache)


def test_the_stubs_name_what_the_package_has_and_everything_is_documented():
    import ast

    stubs = Path(mp.__file__).with_name("__init__.pyi")
    tree = ast.parse(stubs.read_text())
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert stubbed == set(mp.__all__)
    assert (Path(mp.__file__).with_name("py.typed")).exists()
    for name in mp.__all__:
        assert getattr(mp, name).__doc__, name
    for field in ["id", "local_path", "digest", "verification", "computed", "bytes",
                  "bytes_read", "cached"]:
        assert getattr(mp.Model, field).__doc__, field


def test_mirror_and_signer_rules_are_read_as_the_command_line_reads_them(cache, monkeypatch):
    monkeypatch.setenv("MODEL_PROVISIONER_MIRRORS", "not a rule")
    with pytest.raises(mp.UsageError):
        mp.ensure(str(TINY), digest=TINY_DIGEST, cache_dir=cache)
    monkeypatch.delenv("MODEL_PROVISIONER_MIRRORS")
    (cache / "signers.conf").write_text("not a rule\n")
    with pytest.raises(mp.UsageError):
        mp.ensure(str(TINY), digest=TINY_DIGEST, cache_dir=cache)
