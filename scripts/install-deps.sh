#!/usr/bin/env bash
# Installs what building, testing and the demo need, and only what is missing.
# Debian packages via apt-get (as root, or with sudo when available).
set -euo pipefail

missing=()
need() { # need <command> <debian package>
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need cmake cmake            # pingora's compression dependency builds zlib-ng
need cc build-essential
need pkg-config pkg-config
need python3 python3        # the demo shop backend
need curl curl

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
