#!/usr/bin/env bash
# The vendored pingora crates (vendor/pingora-core, vendor/pingora-http,
# vendor/pingora-proxy) against the
# releases they were taken from.
#
#   scripts/vendor-diff.sh            print the diffs (released -> vendor/<crate>)
#   scripts/vendor-diff.sh --check    fail when a vendor/<crate>.patch is not that diff
#   scripts/vendor-diff.sh --write    write each diff to vendor/<crate>.patch
#   scripts/vendor-diff.sh --carry V  apply the patches to release V in target/vendor-carry/,
#                                     to review and move to vendor/<crate> (README)
set -euo pipefail
cd "$(dirname "$0")/.."

crates=(pingora-core pingora-http pingora-proxy)
work=target/vendor-diff
mkdir -p "$work"

base() { # base <crate>: the release the vendored copy was taken from
  sed -n 's/^version = "\(.*\)"$/\1/p' "vendor/$1/Cargo.toml" | head -1
}

release() { # release <crate> <version>: the published crate, unpacked, path printed
  local crate=$1 version=$2 dir="$work/$1-$2"
  if [ ! -d "$dir" ]; then
    curl -sSfL --retry 3 -o "$work/$crate-$version.crate" \
      "https://static.crates.io/crates/$crate/$crate-$version.crate"
    tar -xzf "$work/$crate-$version.crate" -C "$work"
  fi
  echo "$dir"
}

diff_vendor() { # diff_vendor <crate>
  local crate=$1 version released
  version=$(base "$crate")
  released=$(release "$crate" "$version")
  # Paths relative to the crate root, so the patch applies with `patch -p1` anywhere.
  (cd "$work" && diff -ruN -x .cargo_vcs_info.json -x target \
    "$crate-$version" "../../vendor/$crate" |
    sed -e "s|^--- $crate-$version/\([^\t]*\).*|--- a/\1|" \
        -e "s|^+++ ../../vendor/$crate/\([^\t]*\).*|+++ b/\1|" \
        -e "s|^diff -ruN .*|diff|") || true
  : "$released"
}

case "${1:-}" in
  "") for crate in "${crates[@]}"; do diff_vendor "$crate"; done ;;
  --write)
    for crate in "${crates[@]}"; do
      diff_vendor "$crate" > "vendor/$crate.patch"
      echo "wrote vendor/$crate.patch"
    done ;;
  --check)
    for crate in "${crates[@]}"; do
      if ! diff -u "vendor/$crate.patch" <(diff_vendor "$crate") > "$work/stale.diff"; then
        echo "vendor/$crate.patch is not the diff of vendor/$crate against $(base "$crate"):" >&2
        head -40 "$work/stale.diff" >&2
        echo "run scripts/vendor-diff.sh --write, and list the change in vendor/README.md" >&2
        exit 1
      fi
      echo "vendor/$crate = $crate $(base "$crate") + vendor/$crate.patch"
    done ;;
  --carry)
    next=${2:?usage: --carry <version>}
    failed=0
    for crate in "${crates[@]}"; do
      released=$(release "$crate" "$next")
      out=target/vendor-carry/$crate-$next
      rm -rf "$out"; mkdir -p target/vendor-carry; cp -r "$released" "$out"
      if (cd "$out" && patch -p1 --no-backup-if-mismatch < "../../../vendor/$crate.patch"); then
        echo "patched release $next in $out: review, then replace vendor/$crate with it"
      else
        echo "some hunks did not apply (see $out/**/*.rej); carry them by hand" >&2
        failed=1
      fi
    done
    exit "$failed" ;;
  *) echo "usage: $0 [--check|--write|--carry <version>]" >&2; exit 2 ;;
esac
