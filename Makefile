# sso-sidecar: `make demo` to try it, `make test` to run every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: deps build demo demo-stop test fuzz-smoke check ci docs conformance bench bench-instructions bench-syscalls soak fuzz attack clean

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release --locked

demo: build
	@scripts/demo.sh

demo-stop:
	@scripts/demo-stop.sh

# One debug build shared by the unit and integration tests, run by cargo-nextest (several
# tests at once, see .config/nextest.toml).
test: deps
	$(CARGO) nextest run --locked --all-targets

# A short run of every fuzz target (CI runs it after the tests; `make fuzz` is the long one).
fuzz-smoke: deps
	FUZZ_SECONDS=$${FUZZ_SECONDS:-10} FUZZ_PROFILE=dev scripts/fuzz.sh

check: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	.venv/bin/hadolint Dockerfile
	.venv/bin/yamllint --strict helm/ examples/forward-auth/ docs/openapi/
	.venv/bin/python helm/test_chart.py --lint
	scripts/vendor-diff.sh --check
	$(MAKE) --no-print-directory docs

# The book (docs/) with mdBook into target/book; fails on a broken relative link or a key
# reference that does not match the config parser.
docs: deps
	@DOCS=1 scripts/install-deps.sh
	.tools/bin/mdbook build docs
	$(CARGO) test --locked --test docs

ci: test fuzz-smoke check

# The relying-party conformance suite (also part of `make test`): prints the table of test
# id, expected outcome and result that docs/src/development/testing.md shows.
conformance: deps
	CONFORMANCE_TABLE=target/conformance.md $(CARGO) test --locked --test conformance -- --nocapture --test-threads 1 relying_party_conformance
	@cat target/conformance.md

# Not part of `make test`: sso-sidecar vs. the plain upstream and Apache mod_auth_openidc.
bench:
	@BENCH=1 scripts/install-deps.sh
	$(CARGO) build --release --locked --bin sso-sidecar --example mint_sessions --example pingora_floor
	python3 bench/run.py

# Not part of `make test`: instructions per request under callgrind (repeatable to the
# instruction, unlike CPU time) for the pingora floor and the sidecar, with where they go.
bench-instructions:
	@BENCH=1 scripts/install-deps.sh
	$(CARGO) build --release --locked --bin sso-sidecar --example mint_sessions --example pingora_floor
	python3 bench/instructions.py

# Not part of `make test`: system calls and context switches per request (perf stat) for
# the pingora floor and the sidecar.
bench-syscalls:
	@BENCH=1 scripts/install-deps.sh
	$(CARGO) build --release --locked --bin sso-sidecar --example mint_sessions --example pingora_floor
	python3 bench/syscalls.py

# Not part of `make test`: steady authenticated load with refreshes (SOAK_DURATION, default 600 s).
soak:
	@SOAK=1 scripts/install-deps.sh
	$(CARGO) build --release --locked --bin sso-sidecar
	python3 bench/soak.py

# Not part of `make test`: a bounded attack from loopback (huge and slow request heads) on the
# release build; checks memory, the cut-offs and legitimate latency.
attack: deps
	$(CARGO) test --release --locked --test limits -- --ignored --nocapture

# Not part of `make test` (a short run of each target is): FUZZ_SECONDS per target, default 600.
fuzz: deps
	@scripts/fuzz.sh

clean:
	$(CARGO) clean
	rm -rf .demo
