# sso-sidecar: `make demo` to try it, `make test` to run every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: deps build demo demo-stop test check ci clean

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release --locked

demo: build
	@scripts/demo.sh

demo-stop:
	@scripts/demo-stop.sh

# One debug build shared by the unit and integration tests.
test: deps
	$(CARGO) test --locked --all-targets

check: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

ci: test check

clean:
	$(CARGO) clean
	rm -rf .demo
