"""The command line's options as keyword arguments: offline, signatures, mirrors, rates, and
`push` and `mirror` to an S3 store on loopback."""

import os
import shutil
from pathlib import Path

import pytest

import model_provisioner as mp
from conftest import model_signing_sign

TINY = Path(__file__).resolve().parents[3] / "examples" / "tiny.gguf"
TINY_DIGEST = "sha256:197f36c37a8d66ba7366ae25ab40fb922d6ed8881cecc06eddacedc11699e50f"


def test_offline_answers_from_the_catalog_and_asks_nothing(s3, cache):
    s3.put("models", "tiny.gguf", TINY.read_bytes())
    s3.put("models", "other.gguf", TINY.read_bytes())
    fetched = mp.ensure("s3://models/tiny.gguf", digest=TINY_DIGEST, endpoint_url=s3.endpoint,
                        cache_dir=cache)
    # Nothing answers any more: a request would fail as unreachable, not as offline.
    s3.stop()
    m = mp.ensure("s3://models/tiny.gguf", offline=True, endpoint_url=s3.endpoint,
                  cache_dir=cache)
    assert (m.id, m.cached, m.bytes_read) == (fetched.id, True, 0)
    with pytest.raises(mp.ProvisionError, match="offline, and `.*/models/other.gguf` is not in the catalog") as caught:
        mp.ensure("s3://models/other.gguf", offline=True, endpoint_url=s3.endpoint,
                  cache_dir=cache)
    assert "--offline" in caught.value.hint


def test_refresh_resolves_a_cached_model_again(nginx, cache):
    nginx.put("model.bin", os.urandom(1 << 10))
    mp.ensure(nginx.url("files/model.bin"), cache_dir=cache)
    before = len(nginx.requests())
    assert mp.ensure(nginx.url("files/model.bin"), cache_dir=cache).cached
    assert len(nginx.requests()) == before
    mp.ensure(nginx.url("files/model.bin"), refresh=True, cache_dir=cache)
    assert len(nginx.requests()) > before


def signed_folder(tmp_path: Path, key) -> Path:
    model = tmp_path / "signed-model"
    model.mkdir()
    shutil.copy(TINY, model / "model.gguf")
    (model / "config.json").write_text('{"architectures": ["Tiny"]}')
    model_signing_sign(model, key)
    return model


def test_signed_by_the_right_key_passes_and_by_another_is_a_verification_error(
        tmp_path, keys, tmp_path_factory):
    signer, other = keys
    model = signed_folder(tmp_path, signer)
    with pytest.raises(mp.VerificationError) as caught:
        mp.ensure(str(model), signed_by=f"key:{other.public}",
                  cache_dir=tmp_path_factory.mktemp("cache"))
    assert caught.value.hint and "signed" in caught.value.hint
    cache = tmp_path_factory.mktemp("cache")
    m = mp.ensure(str(model), signed_by=f"key:{signer.public}", cache_dir=cache)
    assert mp.show(m.id, cache_dir=cache)["signature"]["outcome"] == "verified"


def test_a_signature_given_apart_stands_for_model_sig(tmp_path, keys, tmp_path_factory):
    signer, other = keys
    model = signed_folder(tmp_path, signer)
    bundle = tmp_path / "apart.sig"
    (model / "model.sig").rename(bundle)
    m = mp.ensure(str(model), signed_by=f"key:{signer.public}", signature=str(bundle),
                  cache_dir=tmp_path_factory.mktemp("cache"))
    assert m.verification in ("pass", "warn")
    with pytest.raises(mp.VerificationError):
        mp.ensure(str(model), signed_by=f"key:{other.public}", signature=str(bundle),
                  cache_dir=tmp_path_factory.mktemp("cache"))


def test_bad_option_values_are_usage_errors_with_hints(cache, tmp_path):
    def refused(match, **options):
        with pytest.raises(mp.UsageError, match=match) as caught:
            mp.ensure(str(TINY), digest=TINY_DIGEST, cache_dir=cache, **options)
        return caught.value

    assert refused("is no rate", limit_rate="x").hint
    refused("is no rate", limit_rate=0)
    refused("is no rate", limit_rate=-5)
    refused("connections", connections=0)
    refused("connections", connections=65)
    refused("endpoint_url", endpoint_url="ftp://example.invalid/")
    refused("endpoint_url", endpoint_url="http://127.0.0.1:9/path")
    assert "SOURCE=MIRROR" in refused("invalid mirror rule", mirrors=["not a rule"]).hint
    refused("no_mirror", mirrors=["hf:=oci://127.0.0.1:1/hf"], no_mirror=True)
    assert "key:PATH.pem" in refused("signer policy", signed_by="nonsense").hint
    refused("signer policy", signed_by=f"key:{tmp_path / 'absent.pem'}")
    m = mp.ensure(str(TINY), digest=TINY_DIGEST, cache_dir=cache)
    with pytest.raises(mp.UsageError) as caught:
        mp.push(m.id, "s3://bucket/models/", sign="nonsense", cache_dir=cache)
    assert "key:PRIVATE.pem" in caught.value.hint
    with pytest.raises(mp.UsageError, match="is no rate"):
        mp.mirror(m.id, "s3://bucket/mirror", limit_rate="fast", cache_dir=cache)


def test_limit_rate_as_bytes_or_text_still_delivers(nginx, cache):
    digest = nginx.put("model.bin", os.urandom(1 << 20))
    m = mp.ensure(nginx.url("files/model.bin"), digest=digest, limit_rate=64 << 20,
                  connections=2, cache_dir=cache)
    assert m.verification == "pass"
    again = mp.ensure(nginx.url("files/model.bin"), digest=digest, limit_rate="64Mi",
                      refresh=True, cache_dir=cache)
    assert again.verification == "pass"


def test_no_mirror_turns_off_the_rules_of_the_environment(nginx, cache, monkeypatch):
    data = os.urandom(1 << 10)
    digest = nginx.put("mirrored.bin", data)
    origin = nginx.url("files/origin/")
    rule = f"{origin}={nginx.url('files/')}"
    monkeypatch.setenv("MODEL_PROVISIONER_MIRRORS", rule)
    with pytest.raises(mp.ProvisionError):
        mp.ensure(origin + "mirrored.bin", digest=digest, no_mirror=True, cache_dir=cache)
    m = mp.ensure(origin + "mirrored.bin", digest=digest, cache_dir=cache)
    assert m.local_path.read_bytes() == data
    assert "/files/mirrored.bin" in nginx.requests()


def test_mirror_then_ensure_through_the_rule_it_returns(s3, cache, tmp_path_factory):
    data = TINY.read_bytes()
    s3.put("origin", "models/tiny/model.gguf", data)
    (s3.root / "mirror").mkdir()
    reference = "s3://origin/models/tiny/"
    m = mp.ensure(reference, endpoint_url=s3.endpoint, cache_dir=cache)
    mirrored = mp.mirror(m.id, "s3://mirror/copies", endpoint_url=s3.endpoint, cache_dir=cache)
    assert (mirrored["id"], mirrored["mirror"], mirrored["files"]) == (m.id, "s3://mirror/copies", 1)
    # The rule's source is the bucket as the id names it, its endpoint included.
    source, target = mirrored["rule"].split("=")
    assert (m.id.startswith(source), source.endswith("/origin"), target) == (
        True, True, "s3://mirror/copies")
    assert mirrored["destinations"] and mirrored["bytes_uploaded"] == len(data)
    assert (s3.root / "mirror" / "copies" / "models" / "tiny" / "model.gguf").read_bytes() == data
    # The origin gone, a new machine fetches it from the mirror with the rule given.
    shutil.rmtree(s3.root / "origin" / "models")
    elsewhere = tmp_path_factory.mktemp("cache")
    with pytest.raises(mp.ProvisionError):
        mp.ensure(reference, endpoint_url=s3.endpoint, cache_dir=elsewhere)
    again = mp.ensure(reference, endpoint_url=s3.endpoint, mirrors=[mirrored["rule"]],
                      cache_dir=elsewhere)
    assert (again.id, again.verification) == (m.id, "pass")
    assert (again.local_path / "model.gguf").read_bytes() == data


def test_push_signs_what_ensure_then_checks(s3, cache, keys, tmp_path_factory):
    signer, other = keys
    (s3.root / "models").mkdir()
    m = mp.ensure(str(TINY), digest=TINY_DIGEST, cache_dir=cache)
    pushed = mp.push(m.id, "s3://models/tiny/", sign=f"key:{signer.private}",
                     endpoint_url=s3.endpoint, limit_rate="100M", cache_dir=cache)
    assert pushed["files"] == 1
    assert (s3.root / "models" / "tiny" / "model.sig").exists()
    with pytest.raises(mp.VerificationError):
        mp.ensure("s3://models/tiny/", signed_by=f"key:{other.public}",
                  endpoint_url=s3.endpoint, cache_dir=tmp_path_factory.mktemp("cache"))
    pulled = mp.ensure("s3://models/tiny/", signed_by=f"key:{signer.public}",
                       endpoint_url=s3.endpoint, cache_dir=tmp_path_factory.mktemp("cache"))
    assert pulled.verification == "pass"


def test_no_sign_request_sends_no_credentials(s3, cache):
    s3.put("public", "tiny.gguf", TINY.read_bytes())
    with pytest.raises(mp.ProvisionError, match="403|denied|Access"):
        mp.ensure("s3://public/tiny.gguf", endpoint_url=s3.endpoint, no_sign_request=True,
                  cache_dir=cache)
    assert mp.ensure("s3://public/tiny.gguf", endpoint_url=s3.endpoint,
                     cache_dir=cache).verification in ("pass", "warn")
