#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not installed; install Rust (https://rustup.rs) first" >&2
  exit 1
fi

# Servers and tools the tests run against: Debian's nginx, git and git-lfs, and olah,
# huggingface_hub (`hf`), maturin and pytest in a venv under .venv/.
bash scripts/install-test-deps.sh

# The default build of the library must not link an HTTP client (file-only means no network),
# and neither do the header readers, progress reporting, the credentials crate without features
# or the model-signing crate.
for crate in model-provisioner model-info mp-progress mp-credentials mp-signing; do
  http_deps=$(cargo tree --locked -p "$crate" -e normal --prefix none \
    | grep -E '^(reqwest|hyper|ureq|curl|isahc|h2|tokio) ' || true)
  if [ -n "$http_deps" ]; then
    echo "error: $crate's default build pulls in network crates:" >&2
    echo "$http_deps" >&2
    exit 1
  fi
  echo "ok: $crate's default build links no HTTP client"
done

cargo test --locked --workspace --all-features --all-targets
cargo test --locked --workspace --all-features --doc

# The Python package: its abi3 wheel built and installed into the test venv, then its tests.
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
.venv/bin/maturin build --locked --manifest-path crates/python/Cargo.toml --out "$wheels" --quiet
PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install --quiet --no-input --no-index \
  --no-deps --force-reinstall "$wheels"/model_provisioner-*.whl
.venv/bin/python -m pytest -q crates/python/tests
