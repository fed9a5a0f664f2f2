#!/usr/bin/env bash
# Runs every fuzz target with cargo fuzz (libFuzzer) for FUZZ_SECONDS each (default 600).
#
# No nightly toolchain can be had on our machines, so this is cargo fuzz on the stable
# compiler: RUSTC_BOOTSTRAP=1 lets it pass its unstable flags, and `--sanitizer none` drops
# AddressSanitizer (safe Rust needs it little; coverage guidance and debug assertions stay).
# A crash stops the run with the reproducer under fuzz/artifacts/<target>/ and exit 1;
# turn it into a regression test before fixing it.
#
# FUZZ_TARGETS picks targets (default all); FUZZ_PROFILE=dev builds without optimisation,
# which builds faster and runs slower (what the short runs in `make test` use).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-600}
targets=${FUZZ_TARGETS:-"session_cookie state_cookie callback_query return_path config import_icm canonical_path canonical_host step_up_challenge"}
profile_flag=()
if [ "${FUZZ_PROFILE:-release}" = dev ]; then
  profile_flag=(--dev)
  # cargo fuzz adds its instrumentation flags to these; no debug info builds a sixth faster.
  export RUSTFLAGS="${RUSTFLAGS:-} -Cdebuginfo=0"
fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2 --quiet
fi

# Seeds: the shipped configs, the ICM fixture and a few hand-picked inputs; libFuzzer
# grows the corpus from there (fuzz/corpus is not committed).
seed() { # seed <target> <name> <content>
  mkdir -p "fuzz/corpus/$1"
  printf '%s' "$3" >"fuzz/corpus/$1/seed-$2"
}
mkdir -p fuzz/corpus/config fuzz/corpus/import_icm
cp conf/*.toml tests/fixtures/broken.toml fuzz/corpus/config/
cp tests/fixtures/icm-sso.properties fuzz/corpus/import_icm/
seed callback_query ok 'code=abc&state=xyz&iss=https%3A%2F%2Fidp.example'
seed callback_query error 'error=access_denied&error_description=no&state=s'
seed return_path relative '/account/orders?x=1#top'
seed return_path scheme_relative '//evil.example/%2e%2e'
seed return_path backslash '/\evil.example'
seed session_cookie chunks '_sso_session=1.abc; _sso_session_1=def'
seed state_cookie sealed 'v1.AAAAAAAAAAAAAAAA'
seed canonical_host trailing_dot 'AAdmin.Shop.Test.:80'
mkdir -p fuzz/corpus/canonical_host
printf 'C\000admin.shop.test.' >fuzz/corpus/canonical_host/seed-absolute
seed canonical_host ipv6 'A[0:0::FFFF:10.0.0.1]:8443'
seed canonical_path tricks '/INTERSHOP/static/%2e%2e/web/WFS;x=1/SLDSystem/..;a//%7E'
seed step_up_challenge backend 'Basic realm="x", Bearer error="insufficient_user_authentication", acr_values="urn:mfa gold", max_age=300
urn:mfa gold&600'

cargo fuzz build --sanitizer none "${profile_flag[@]}"

failed=()
for target in $targets; do
  echo "fuzz: $target for ${seconds}s"
  log=$(mktemp)
  if cargo fuzz run --sanitizer none "${profile_flag[@]}" "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
    echo "fuzz: $target ok: $runs runs, coverage $cov, corpus $(find "fuzz/corpus/$target" -type f | wc -l) inputs"
  else
    tail -40 "$log"
    failed+=("$target")
  fi
  rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (reproducers under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: all targets ran ${seconds}s without a crash"
