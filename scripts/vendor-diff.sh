#!/usr/bin/env bash
# The vendored pingora-core against the release it was taken from.
#
#   scripts/vendor-diff.sh            print the diff (released -> vendor/pingora-core)
#   scripts/vendor-diff.sh --check    fail when vendor/pingora-core.patch is not that diff
#   scripts/vendor-diff.sh --write    write the diff to vendor/pingora-core.patch
#   scripts/vendor-diff.sh --carry V  apply the patch to release V in target/vendor-carry/,
#                                     to review and move to vendor/pingora-core (README)
set -euo pipefail
cd "$(dirname "$0")/.."

base=$(sed -n 's/^version = "\(.*\)"$/\1/p' vendor/pingora-core/Cargo.toml | head -1)
work=target/vendor-diff
mkdir -p "$work"

release() { # release <version>: the published crate, unpacked, path printed
  local version=$1 dir="$work/pingora-core-$1"
  if [ ! -d "$dir" ]; then
    curl -sSfL --retry 3 -o "$work/pingora-core-$version.crate" \
      "https://static.crates.io/crates/pingora-core/pingora-core-$version.crate"
    tar -xzf "$work/pingora-core-$version.crate" -C "$work"
  fi
  echo "$dir"
}

diff_vendor() {
  local released
  released=$(release "$base")
  # Paths relative to the crate root, so the patch applies with `patch -p1` anywhere.
  (cd "$work" && diff -ruN -x .cargo_vcs_info.json -x target \
    "pingora-core-$base" ../../vendor/pingora-core |
    sed -e "s|^--- pingora-core-$base/\([^\t]*\).*|--- a/\1|" \
        -e "s|^+++ ../../vendor/pingora-core/\([^\t]*\).*|+++ b/\1|" \
        -e "s|^diff -ruN .*|diff|") || true
  : "$released"
}

case "${1:-}" in
  "") diff_vendor ;;
  --write) diff_vendor > vendor/pingora-core.patch; echo "wrote vendor/pingora-core.patch" ;;
  --check)
    if ! diff -u vendor/pingora-core.patch <(diff_vendor) > "$work/stale.diff"; then
      echo "vendor/pingora-core.patch is not the diff of vendor/pingora-core against $base:" >&2
      head -40 "$work/stale.diff" >&2
      echo "run scripts/vendor-diff.sh --write, and list the change in vendor/README.md" >&2
      exit 1
    fi
    echo "vendor/pingora-core = pingora-core $base + vendor/pingora-core.patch" ;;
  --carry)
    next=${2:?usage: --carry <version>}
    released=$(release "$next")
    out=target/vendor-carry/pingora-core-$next
    rm -rf "$out"; mkdir -p target/vendor-carry; cp -r "$released" "$out"
    if (cd "$out" && patch -p1 --no-backup-if-mismatch < ../../../vendor/pingora-core.patch); then
      echo "patched release $next in $out: review, then replace vendor/pingora-core with it"
    else
      echo "some hunks did not apply (see $out/**/*.rej); carry them by hand" >&2
      exit 1
    fi ;;
  *) echo "usage: $0 [--check|--write|--carry <version>]" >&2; exit 2 ;;
esac
