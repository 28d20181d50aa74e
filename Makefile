# up42webhooks: build, run, test and benchmark.
# `make serve` and `make test` are the README's quick start; both install what they miss.

CARGO ?= cargo
RELEASE_DIR := target/release
PORT ?= 9888
RUN_DIR ?= run
# OpenResty when it is on the PATH, else nginx (Debian's, with libnginx-mod-http-lua).
NGINX ?= $(shell command -v openresty || command -v nginx || echo /usr/sbin/nginx)
RUN_ABS = $(abspath $(RUN_DIR))

.PHONY: help deps nginx-deps build test lint header bench sign-example serve stop logs send-test clean

help:
	@echo "make serve         build and run the receiver on 127.0.0.1:PORT (default 9888), in the background;"
	@echo "                   the secret comes from UP42_WEBHOOK_SECRET or UP42_WEBHOOK_SECRET_FILE"
	@echo "make stop / logs   stop it / follow its logs"
	@echo "make send-test     sign a fresh test event, post it to the running server, show the dump"
	@echo "make build         build the library (cdylib + rlib) and the up42wh-sign tool, release mode"
	@echo "make test          every check: formatting, clippy, the header diff and all tests"
	@echo "make bench         criterion (verify/floor), LuaJIT FFI vs OpenSSL, wrk against nginx"
	@echo "make header        regenerate include/up42webhooks.h and lua/up42webhooks/cdef.lua"
	@echo "make sign-example  sign a fresh test event (needs UP42_WEBHOOK_SECRET)"

# Installs the Debian packages a recipe listed in $$missing (apt-get, when we are root), or names
# them and fails. Expanded inside each recipe's shell, after it has filled $$missing.
APT_INSTALL = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "please install:$$missing" >&2; exit 1; fi; \
	fi

# The tests compile a C program and rerun the Python reference signer: a C compiler and python3.
# Installed with apt-get when missing and we are root; otherwise say what is missing.
deps:
	@missing=""; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	command -v python3 >/dev/null 2>&1 || missing="$$missing python3"; \
	$(APT_INSTALL)
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "Rust is needed: https://rustup.rs" >&2; exit 1; }
	@if command -v rustup >/dev/null 2>&1; then \
	  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt; \
	  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy; \
	fi

# nginx with the Lua module, lua-resty-core and lua-cjson (Debian's packages) unless OpenResty is here.
nginx-deps:
	@if command -v openresty >/dev/null 2>&1; then exit 0; fi; \
	missing=""; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	for p in libnginx-mod-http-lua lua-resty-core lua-cjson; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	$(APT_INSTALL)

build: deps
	$(CARGO) build --release --locked
	@echo "built $(RELEASE_DIR)/libup42webhooks.so and $(RELEASE_DIR)/up42wh-sign"

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

test: lint nginx-deps
	$(CARGO) test --locked

header:
	UP42WH_BLESS=1 $(CARGO) test --locked --test header

# criterion (library), LuaJIT FFI vs OpenSSL (one process), wrk against real nginx.
bench: build nginx-deps
	$(CARGO) bench --locked --bench verify
	@python3 benches/ratios.py target/criterion
	$(CARGO) run --release --locked --example lua_bench -- benches/ffi_vs_openssl.lua
	@missing=""; command -v wrk >/dev/null 2>&1 || missing=wrk; $(APT_INSTALL)
	benches/wrk/run.sh 10 16

sign-example: build
	$(RELEASE_DIR)/up42wh-sign --event job --url http://127.0.0.1:9888/receive-webhooks

serve: build nginx-deps
	@if [ -z "$$UP42_WEBHOOK_SECRET$$UP42_WEBHOOK_SECRET_FILE" ]; then \
	  echo "set UP42_WEBHOOK_SECRET (or UP42_WEBHOOK_SECRET_FILE, one secret a line) first" >&2; exit 1; fi
	@if [ -f $(RUN_DIR)/logs/nginx.pid ] && kill -0 $$(cat $(RUN_DIR)/logs/nginx.pid) 2>/dev/null; then \
	  echo "already running (make stop first)" >&2; exit 1; fi
	openresty/prefix.sh $(RUN_DIR) $(PORT) $(RELEASE_DIR) $(NGINX)
	$(NGINX) -p $(RUN_ABS) -c conf/nginx.conf
	@for i in $$(seq 1 50); do \
	  curl -fsS http://127.0.0.1:$(PORT)/ping >/dev/null 2>&1 && { \
	    echo "serving on http://127.0.0.1:$(PORT)/receive-webhooks (logs: make logs, stop: make stop)"; exit 0; }; \
	  sleep 0.1; done; \
	echo "nginx did not answer on port $(PORT); $(RUN_DIR)/logs/error.log says:" >&2; \
	tail -n 20 $(RUN_DIR)/logs/error.log >&2; exit 1

stop:
	@if [ -f $(RUN_DIR)/logs/nginx.pid ]; then \
	  $(NGINX) -p $(RUN_ABS) -c conf/nginx.conf -s stop && echo stopped; \
	else echo "not running"; fi

logs:
	tail -n 50 -F $(RUN_DIR)/logs/error.log $(RUN_DIR)/logs/access.log

send-test: build
	@cmd=$$($(RELEASE_DIR)/up42wh-sign --event job --status SUCCEEDED --url http://127.0.0.1:$(PORT)/receive-webhooks) && \
	echo "POST /receive-webhooks -> $$(sh -c "$$cmd")"
	@echo "GET /dump-webhooks (last lines):"
	@curl -fsS http://127.0.0.1:$(PORT)/dump-webhooks | tail -n 2

clean:
	$(CARGO) clean
	rm -rf $(RUN_DIR)
