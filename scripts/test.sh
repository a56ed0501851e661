#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not installed; install Rust (https://rustup.rs) first" >&2
  exit 1
fi

# Servers the tests run against, from Debian's packages.
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: the tests need: ${need[*]}; install them (e.g. \`sudo apt-get install ${need[*]}\`)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The default build of the library must not link an HTTP client (file-only means no network).
http_deps=$(cargo tree --locked -p model-provisioner -e normal --prefix none \
  | grep -E '^(reqwest|hyper|ureq|curl|isahc|h2|tokio) ' || true)
if [ -n "$http_deps" ]; then
  echo "error: model-provisioner's default features pull in network crates:" >&2
  echo "$http_deps" >&2
  exit 1
fi
echo "ok: model-provisioner's default features link no HTTP client"

cargo test --locked --workspace --all-features --all-targets
cargo test --locked --workspace --all-features --doc
