# up42webhooks: build, test and benchmark the verification library.
# `make build` and `make test` are the README's quick start; both install what they miss.

CARGO ?= cargo
RELEASE_DIR := target/release

.PHONY: help deps build test lint header bench sign-example clean

help:
	@echo "make build         build the library (cdylib + rlib) and the up42wh-sign tool, release mode"
	@echo "make test          every check: formatting, clippy, the header diff and all tests"
	@echo "make bench         criterion benchmarks, then verify/floor ratios"
	@echo "make header        regenerate include/up42webhooks.h and lua/up42webhooks/cdef.lua"
	@echo "make sign-example  sign a fresh test event (needs UP42_WEBHOOK_SECRET)"

# The tests compile a C program and rerun the Python reference signer: a C compiler and python3.
# Installed with apt-get when missing and we are root; otherwise say what is missing.
deps:
	@missing=""; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	command -v python3 >/dev/null 2>&1 || missing="$$missing python3"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install:$$missing" >&2; exit 1; fi; \
	fi
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "Rust is needed: https://rustup.rs" >&2; exit 1; }
	@if command -v rustup >/dev/null 2>&1; then \
	  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt; \
	  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy; \
	fi

build: deps
	$(CARGO) build --release --locked
	@echo "built $(RELEASE_DIR)/libup42webhooks.so and $(RELEASE_DIR)/up42wh-sign"

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

test: lint
	$(CARGO) test --locked

header:
	UP42WH_BLESS=1 $(CARGO) test --locked --test header

bench: deps
	$(CARGO) bench --locked --bench verify
	@python3 benches/ratios.py target/criterion

sign-example: build
	$(RELEASE_DIR)/up42wh-sign --event job --url http://127.0.0.1:9888/receive-webhooks

clean:
	$(CARGO) clean
