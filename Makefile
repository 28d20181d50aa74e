# up42webhooks: build, run, test and benchmark.
# `make serve` and `make test` are the README's quick start; both install what they miss.

# No "Entering directory" lines, also when make runs inside another make: make dump | jq, make
# stats | jq read JSON only.
MAKEFLAGS += --no-print-directory
CARGO ?= cargo
# Where cargo builds: CARGO_TARGET_DIR when it is set, as cargo itself does.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
RELEASE_DIR ?= $(TARGET_DIR)/release
RUN_DIR ?= run
# What the receiver was last started with (make serve writes both files, mode 0600): the make
# settings below in settings.mk, the receiver's UP42_WEBHOOK_* settings in settings.env (never a
# secret's value: the secret by its file's path). Every target that starts it uses them unless
# given anew, and its first line says which it used.
SETTINGS_MK = $(RUN_DIR)/settings.mk
SETTINGS_ENV = $(RUN_DIR)/settings.env
REMEMBER_VARS = PORT ADMIN_PORT LISTEN ADMIN_LISTEN TLS_CERT TLS_KEY ADMIN_ACCESS_LOG
-include $(SETTINGS_MK)
PORT ?= 9888
# The public listener (deliveries, /ping): loopback unless opened (LISTEN=0.0.0.0:9888). With
# TLS_CERT and TLS_KEY it speaks HTTPS (HTTP/2 and HTTP/1.1). The admin listener (dump, stats)
# stays on loopback: ADMIN_PORT picks its port.
LISTEN ?= 127.0.0.1:$(PORT)
ADMIN_PORT ?= 9889
ADMIN_LISTEN ?= 127.0.0.1:$(ADMIN_PORT)
ADMIN_URL = http://127.0.0.1:$(ADMIN_PORT)
TLS_CERT ?=
TLS_KEY ?=
# ADMIN_ACCESS_LOG=on: admin requests (dump, stats, tail) in the access log too; off by default, so
# that it holds deliveries.
ADMIN_ACCESS_LOG ?=
# OpenResty when it is on the PATH, else nginx (Debian's, with libnginx-mod-http-lua).
NGINX ?= $(shell command -v openresty || command -v nginx || echo /usr/sbin/nginx)
RUN_ABS = $(abspath $(RUN_DIR))
# The host server's nginx, its prefix and config; -e: its own start-up messages go to the run
# directory's error log too, not to the system's (which a user may not be able to write). make
# exports a NGINX= given on its command line, and nginx reads a NGINX variable as sockets to
# inherit (its binary upgrade): unset for nginx itself.
HOST_NGINX = env -u NGINX $(NGINX) -e logs/error.log -p $(RUN_ABS) -c conf/nginx.conf
# Shell tests: is the host server (make serve) running, is the container (make run)?
HOST_RUNNING = [ -f $(RUN_DIR)/logs/nginx.pid ] && kill -0 $$(cat $(RUN_DIR)/logs/nginx.pid) 2>/dev/null
CONTAINER_RUNNING = [ -n "$(COMPOSE)" ] && [ -n "$$($(COMPOSE_CMD) ps -q 2>/dev/null)" ]

.PHONY: help deps nginx-deps build test test-intro lint header bench sign-example serve secret stop logs send-test clean \
	backup restore admin-url forward bench-forward bench-download connect up42-test reconcile open abi-baseline \
	docker-check docker-deps debian-base image run list reload restart configtest cross deb install \
	cross-test cross-check test-deps dump stats bench-peers fuzz

help:
	@echo "make serve         build and run the receiver in the background: deliveries on LISTEN"
	@echo "                   (default 127.0.0.1:9888), dump and stats on 127.0.0.1:ADMIN_PORT (9889);"
	@echo "                   TLS_CERT=path TLS_KEY=path for HTTPS; the secret comes from"
	@echo "                   UP42_WEBHOOK_SECRET or UP42_WEBHOOK_SECRET_FILE; RECONCILE=1: make reconcile"
	@echo "                   once it answers"
	@echo "make run           the same in Docker (docker compose, OpenResty Alpine image): LISTEN -> 80,"
	@echo "                   admin 127.0.0.1:ADMIN_PORT -> 9889, TLS_CERT/TLS_KEY -> 443;"
	@echo "                   secret from UP42_WEBHOOK_SECRET or the file secrets/up42_webhook_secret;"
	@echo "                   FLAVOR=debian: the Debian image (amd64, arm64, armhf: every Raspberry Pi),"
	@echo "                   its library built from source (LIB=source) or by this host (LIB=host)"
	@echo "make image         build the image without starting it (FLAVOR=debian ARCH=armhf for a board)"
	@echo "make debian-base   a Debian base image without a registry (debootstrap; BASE_IMAGE=...)"
	@echo "make stop / logs / reload   stop it / follow its logs (their last lines once stopped) /"
	@echo "                   re-read config and certificates (HUP; fails when nginx keeps the old config)"
	@echo "                   (the host server, the container, or both)"
	@echo "make dump / stats  the stored events (Q='?status=FAILED' filters) / the counters, from the admin port"
	@echo "make admin-url     the running receiver's admin address, for programs: admin=\$$(make admin-url)"
	@echo "make open          the inbox page (watch, filter, inspect, acknowledge events): opened in this"
	@echo "                   machine's browser when it has a desktop, else its address"
	@echo "make forward       up42wh forward in the foreground with FORWARD_CONFIG (forward.toml; see"
	@echo "                   examples/forward.toml): act on events (HTTP, Slack, programs, email);"
	@echo "                   make run FORWARD=1: in its own container beside the receiver's"
	@echo "make connect URL=https://.../receive-webhooks   register the receiver with UP42 (its API;"
	@echo "                   UP42_USERNAME and UP42_PASSWORD), with the running receiver's secret"
	@echo "make up42-test     have UP42 send its test event and check it arrives: one line, passed or why not"
	@echo "make reconcile     store what UP42 notified while the receiver was down (UP42's API; SINCE=30d)"
	@echo "make restart / configtest   the host server or the container: check, then restart it with"
	@echo "                   the settings it was started with (nothing is stopped when a check fails) / nginx -t"
	@echo "make secret        write a random secret to SECRET_FILE (run/secret, mode 0600) unless there is one;"
	@echo "                   make serve uses it when no secret is given"
	@echo "make backup / restore FILE=x.tgz   the journal and the settings; the receiver stopped and started"
	@echo "                   around it; a restore keeps keys above every key handed out before"
	@echo "make list          the container: its state (healthy?) and its ports"
	@echo "make send-test     sign a fresh test event, post it to the running server (where make serve"
	@echo "                   recorded it, or the container), show the dump; fails when not stored"
	@echo "make build         build the library (cdylib + rlib) and the up42wh-sign tool, release mode"
	@echo "make test          every check: formatting, clippy, the header diff and all tests"
	@echo "make bench         criterion (verify and receive against their floor, journal writes), LuaJIT"
	@echo "                   FFI vs OpenSSL, journal recovery of 100,000 events, the events a 16 MiB dict"
	@echo "                   holds, wrk: ours beside return 200, the Lua floor, the article's handler"
	@echo "                   and a plain Lua/OpenSSL plugin, then each fsync mode"
	@echo "make bench-peers   RFC 9421 B.2.5/B.2.6: ours beside httpsig (Rust) and http-message-signatures"
	@echo "make fuzz          each fuzz target for FUZZ_SECONDS (60) on its corpus (cargo-fuzz, libFuzzer)"
	@echo "make header        regenerate include/up42webhooks.h and lua/up42webhooks/cdef.lua"
	@echo "make cross         build the .so and up42wh for ARM boards into dist/<target>/ (aarch64, armv7)"
	@echo "make cross-test    prove those builds under qemu-user (Rust tests, the ARM LuaJIT)"
	@echo "make deb           Debian packages for amd64, arm64 and armhf into dist/ (DEB_ARCHS=...)"
	@echo "make install       into a host's OpenResty or nginx: module, library, pages and a snippet"
	@echo "                   to include under PREFIX (/usr/local); prints what to add to nginx.conf"
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
# Adds a Rust target with rustup unless it is installed.
RUST_TARGET = rustup target list --installed 2>/dev/null | grep -qx '$(1)' || rustup target add $(1)

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
# The Redis store's client is lua-resty-redis: OpenResty bundles it (resty.redis); Debian packages it
# as lua-nginx-redis (nginx.redis), which depends on the whole nginx-extras set, so only its files
# are taken from the package (with lua-nginx-redis-connector's, for Sentinel), into vendor/lua/
# (git-ignored; prefix.sh links it into the run dir).
nginx-deps:
	@if command -v openresty >/dev/null 2>&1; then exit 0; fi; \
	missing=""; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	for p in libnginx-mod-http-lua lua-resty-core lua-cjson; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	$(APT_INSTALL)
	@if command -v openresty >/dev/null 2>&1 || [ -f /usr/share/lua/5.1/nginx/redis/connector.lua ] || \
	  [ -f vendor/lua/nginx/redis/connector.lua ]; then exit 0; fi; \
	pkgs="lua-nginx-redis lua-nginx-redis-connector"; tmp=$$(mktemp -d); \
	(cd $$tmp && apt-get download -q -o APT::Sandbox::User=root $$pkgs >/dev/null 2>&1) || \
	  { apt-get update -qq && (cd $$tmp && apt-get download -q -o APT::Sandbox::User=root $$pkgs >/dev/null); } || \
	  { echo "cannot download $$pkgs (the Redis store's client)" >&2; rm -rf $$tmp; exit 1; }; \
	for deb in $$tmp/*.deb; do dpkg-deb -x $$deb $$tmp/x || exit 1; done; \
	mkdir -p vendor/lua && cp -R $$tmp/x/usr/share/lua/5.1/nginx vendor/lua/ && rm -rf $$tmp && \
	echo "vendor/lua/nginx/: redis.lua, redis/connector.lua, redis/sentinel.lua from Debian's $$pkgs"

build: deps
	$(CARGO) build --release --locked
	@ln -sf libup42webhooks.so $(RELEASE_DIR)/libup42webhooks.so.0
	@echo "built $(RELEASE_DIR)/libup42webhooks.so (its SONAME, libup42webhooks.so.0, a link to it) and $(RELEASE_DIR)/up42wh-sign"

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@missing=""; command -v luacheck >/dev/null 2>&1 || missing=lua-check; $(APT_INSTALL)
	luacheck lua/

# What the Docker checks need (tests/operations/docker.rs): musl-gcc and Rust's musl target for the library
# the image builds, docker-compose to validate the compose files (no engine needed). The exposure
# tests (tests/receiver/exposure.rs) make certificates with openssl and a second host with iproute2; the
# Redis store's tests (tests/receiver/redis.rs) start Debian's redis-server; the README's commands
# (tests/operations/readme_commands.rs) use jq and redis-cli; the admin listener's browser tests
# (tests/receiver/admin_web.rs) run Debian's headless chromium, and the inbox page's
# (tests/up42/inbox.rs) drive it through chromium-driver with Selenium; the ABI's check (tests/abi/abi_compat.rs)
# runs libabigail's abidw and abidiff.
test-deps:
	@missing=""; \
	command -v musl-gcc >/dev/null 2>&1 || missing="$$missing musl-tools"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v jq >/dev/null 2>&1 || missing="$$missing jq"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	command -v readelf >/dev/null 2>&1 || missing="$$missing binutils"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v luarocks >/dev/null 2>&1 || missing="$$missing luarocks"; \
	command -v lintian >/dev/null 2>&1 || missing="$$missing lintian"; \
	command -v abidiff >/dev/null 2>&1 || missing="$$missing abigail-tools"; \
	command -v luajit >/dev/null 2>&1 || missing="$$missing luajit2"; \
	docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	$(APT_INSTALL)
	@$(call RUST_TARGET,x86_64-unknown-linux-musl)
	@# Python's cryptography, for the Ed25519 reference signer (tests/vectors/gen_senders.py): pip
	@# for a Python of its own (pyenv, venv), Debian's package for the system one.
	@python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q cryptography 2>/dev/null || \
	  { missing=python3-cryptography; $(APT_INSTALL); }
	@python3 -c 'import cryptography' || { echo "Python's cryptography is needed for the tests" >&2; exit 1; }
	@# redis-py, for the README's Redis consumer (examples/redis_consumer.py, run by tests/receiver/redis.rs).
	@python3 -c 'import redis' 2>/dev/null || python3 -m pip install -q redis 2>/dev/null || \
	  { missing=python3-redis; $(APT_INSTALL); }
	@python3 -c 'import redis' || { echo "Python's redis (redis-py) is needed for the tests" >&2; exit 1; }
	@# Selenium, which drives Debian's chromium through its chromedriver for the inbox page's test
	@# (tests/up42/inbox_drive.py).
	@python3 -c 'import selenium' 2>/dev/null || python3 -m pip install -q selenium 2>/dev/null || \
	  { missing=python3-selenium; $(APT_INSTALL); }
	@python3 -c 'import selenium' || { echo "Python's selenium is needed for the tests" >&2; exit 1; }

# tests/operations/containers.rs starts the Docker engine when it is not running (docker-deps installs it).
# What make test does and about how long it takes, said before it starts.
test-intro:
	@echo "make test: formatting and lints, then what the tests need is installed when missing (as root,"
	@echo "  with apt-get: nginx and its Lua module, redis-server, chromium and chromedriver, docker.io,"
	@echo "  debootstrap, qemu, the ARM cross compilers, lintian, luarocks and luajit; Rust targets with"
	@echo "  rustup), then every suite, with the ARM builds and their checks under qemu beside them."
	@echo "  About 12 minutes on 2 cores (11.5 on a quiet machine), a few more the first time on a"
	@echo "  machine (the installs, and the Debian roots the container tests bootstrap); each suite's"
	@echo "  time is listed at the end."

# The lints first (run beside the ARM lane's builds they only slowed them: docs/testing.md); then
# tests/run.sh runs every suite, each even when another fails, with the ARM builds and checks
# beside them, and ends with each suite's count and time and every failing test and step by name.
test: test-intro lint nginx-deps test-deps docker-deps cross-deps
	@MAKE="$(MAKE)" tests/run.sh $(CARGO)

# --- ARM boards (make cross) -----------------------------------------------------------------
# Raspberry Pi OS 64-bit and Armbian on Pine64 (aarch64), Raspberry Pi OS 32-bit (armv7).
# Each board's Debian architecture and Rust target (dist/<target>/ holds its library).
CROSS_ARCHS = arm64 armhf
CROSS_TARGET_arm64 = aarch64-unknown-linux-gnu
CROSS_TARGET_armhf = armv7-unknown-linux-gnueabihf
CROSS_TARGETS ?= $(foreach a,$(CROSS_ARCHS),$(CROSS_TARGET_$(a)))

# Debian's cross compilers (the linkers of .cargo/config.toml), qemu-user, 32-bit x86 libraries
# for the LuaJIT that mlua builds for armv7, and dpkg's foreign architectures so that
# tests/cross/run.sh can fetch each architecture's luajit2.
cross-deps: deps
	@missing=""; \
	command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing="$$missing gcc-aarch64-linux-gnu libc6-dev-arm64-cross"; \
	command -v arm-linux-gnueabihf-gcc >/dev/null 2>&1 || missing="$$missing gcc-arm-linux-gnueabihf libc6-dev-armhf-cross"; \
	command -v qemu-aarch64 >/dev/null 2>&1 || missing="$$missing qemu-user"; \
	[ -f /usr/lib32/libc.so ] || missing="$$missing libc6-dev-i386"; \
	gcc_version=$$(cc -dumpversion); \
	[ -d /usr/lib/gcc/x86_64-linux-gnu/$$gcc_version/32 ] || missing="$$missing lib32gcc-$$gcc_version-dev"; \
	$(APT_INSTALL)
	@for t in $(CROSS_TARGETS); do $(call RUST_TARGET,$$t) || exit 1; done
	@added=""; for a in $(CROSS_ARCHS); do \
	  dpkg --print-foreign-architectures | grep -qx $$a || { dpkg --add-architecture $$a && added=1; }; done; \
	if [ -n "$$added" ] || ! apt-cache show luajit2:arm64 >/dev/null 2>&1; then \
	  apt-get update -qq || echo "apt-get update reported errors; going on with the lists it has" >&2; fi

# Where make cross puts the boards' builds and make deb its packages.
DIST ?= dist
# The cargo profile of the boards' up42wh: release, as shipped. make test builds it with the
# quicker "qemu" profile (Cargo.toml) into a DIST of its own, where it only has to run under qemu;
# the library is always the release build.
UP42WH_PROFILE ?= release

# $(DIST)/<target>/: libup42webhooks.so and the up42wh program, stripped, with a SHA256SUMS file.
# Each is its own build: the library's dependencies stay its small set.
# Every target in one cargo run (the build scripts and macros are built once, and the two targets'
# crates share the cores); the library on its own, so that it takes only its own dependencies.
cross: cross-deps
	CARGO_PROFILE_RELEASE_STRIP=symbols $(CARGO) build --release --locked --lib $(addprefix --target ,$(CROSS_TARGETS))
	CARGO_PROFILE_RELEASE_STRIP=symbols $(CARGO) build --profile $(UP42WH_PROFILE) --locked -p up42wh $(addprefix --target ,$(CROSS_TARGETS))
	@for t in $(CROSS_TARGETS); do \
	  mkdir -p $(DIST)/$$t && cp $(TARGET_DIR)/$$t/release/libup42webhooks.so $(TARGET_DIR)/$$t/$(UP42WH_PROFILE)/up42wh $(DIST)/$$t/ && \
	  (cd $(DIST)/$$t && sha256sum libup42webhooks.so up42wh > SHA256SUMS) && \
	  echo "$(DIST)/$$t/libup42webhooks.so $(DIST)/$$t/up42wh"; \
	done

cross-test: cross
	@$(MAKE) --no-print-directory cross-check

# The checks alone, on the builds already in $(DIST)/ (make test runs them while other suites read
# them, which make cross would copy again).
cross-check:
	@for t in $(CROSS_TARGETS); do DIST=$(abspath $(DIST)) tests/cross/run.sh $$t || exit 1; done

# --- make install: into a host's own OpenResty or nginx with the Lua module -------------------
# The Lua module, the library, the pages and an http-level snippet (default.conf with absolute
# paths, and listen files for LISTEN and ADMIN_LISTEN) under PREFIX; what to add to nginx.conf is
# printed. DESTDIR stages it elsewhere (packagers).
PREFIX ?= /usr/local
INSTALL_LUA = $(PREFIX)/share/lua/5.1
INSTALL_LIB = $(PREFIX)/lib/lua/5.1
INSTALL_SHARE = $(PREFIX)/share/up42webhooks
install: build
	@install -D -m 0644 $(RELEASE_DIR)/libup42webhooks.so $(DESTDIR)$(INSTALL_LIB)/libup42webhooks.so.0
	@ln -sf libup42webhooks.so.0 $(DESTDIR)$(INSTALL_LIB)/libup42webhooks.so
	@install -D -m 0644 lua/up42webhooks.lua $(DESTDIR)$(INSTALL_LUA)/up42webhooks.lua
	@install -d $(DESTDIR)$(INSTALL_LUA)/up42webhooks $(DESTDIR)$(INSTALL_SHARE)/nginx
	@install -m 0644 lua/up42webhooks/*.lua $(DESTDIR)$(INSTALL_LUA)/up42webhooks/
	@rm -rf $(DESTDIR)$(INSTALL_SHARE)/html && cp -R openresty/html $(DESTDIR)$(INSTALL_SHARE)/html
	@sed -e "s|^lua_package_path .*|lua_package_path '$(INSTALL_LUA)/?.lua;;';|" \
	    -e "s|^lua_package_cpath .*|lua_package_cpath '$(INSTALL_LIB)/?.so;;';|" \
	    -e "s#include up42webhooks-\(public\|admin\).conf;#include $(INSTALL_SHARE)/nginx/up42webhooks-\1.conf;#" \
	    -e "s|root html;|root $(INSTALL_SHARE)/html;|" \
	    openresty/default.conf > $(DESTDIR)$(INSTALL_SHARE)/nginx/up42webhooks.conf
	@LISTEN='$(LISTEN)' ADMIN_LISTEN='$(ADMIN_LISTEN)' NGINX=$(NGINX) openresty/listen.sh $(DESTDIR)$(INSTALL_SHARE)/nginx
	@openresty/modules.sh $(NGINX) $(DESTDIR)$(INSTALL_SHARE)/nginx/up42webhooks-modules.conf
	@echo "installed under $(PREFIX). In your nginx.conf:"
	@echo "  in the main context:  include $(INSTALL_SHARE)/nginx/up42webhooks-modules.conf;  (Debian's nginx: its Lua module)"
	@echo "                        env UP42_WEBHOOK_SECRET_FILE;  (and one for each other setting you use: openresty/nginx.conf lists them)"
	@echo "  inside http {}:       include $(INSTALL_SHARE)/nginx/up42webhooks.conf;"
	@echo "(it sets lua_package_path and lua_package_cpath: merge them with yours if you set them)"

# --- Debian packages (make deb) --------------------------------------------------------------
# dist/up42webhooks_<version>_<arch>.deb for DEB_ARCHS: this machine's from make build's library
# and a release up42wh, the boards' from make cross (packaging/deb/build.sh says what goes where).
DEB_ARCHS ?= amd64 arm64 armhf
deb: build
	@$(CARGO) build --release --locked -p up42wh
	@for a in $(DEB_ARCHS); do \
	  if [ "$$a" = "$(NATIVE_ARCH)" ]; then dir=$(RELEASE_DIR); \
	  else case $$a in arm64) t=$(CROSS_TARGET_arm64) ;; armhf) t=$(CROSS_TARGET_armhf) ;; \
	    *) echo "make deb: no build for $$a" >&2; exit 1 ;; esac; dir=$(DIST)/$$t; \
	    [ -f $$dir/up42wh ] || $(MAKE) --no-print-directory cross || exit 1; fi; \
	  packaging/deb/build.sh $$a $$dir $(DIST) || exit 1; done

header:
	UP42WH_BLESS=1 $(CARGO) test --locked --test abi header::

# At a release: the library's ABI as abidw reads it (from the debug build's DWARF), the baseline
# that tests/abi/abi_compat.rs compares every later build with, and the header, which
# tests/abi/c_abi.rs builds a C program against to run it with every later library.
abi-baseline:
	$(CARGO) build --locked --lib
	@v=$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1); \
	abidw --no-corpus-path --out-file abi/libup42webhooks-$$v.abi $(TARGET_DIR)/debug/libup42webhooks.so && \
	gzip -9 -n -f abi/libup42webhooks-$$v.abi && gzip -9 -n -c include/up42webhooks.h > abi/libup42webhooks-$$v.h.gz && \
	echo "abi/libup42webhooks-$$v.abi.gz abi/libup42webhooks-$$v.h.gz"

# criterion (library), LuaJIT FFI vs OpenSSL (one process), wrk against real nginx.
bench: build nginx-deps
	$(CARGO) bench --locked --bench verify
	@python3 benches/ratios.py target/criterion
	$(CARGO) bench --locked --bench journal
	$(CARGO) run --release --locked --example lua_bench -- benches/ffi_vs_openssl.lua
	$(CARGO) run --release --locked --example lua_bench -- benches/record_read.lua
	benches/journal/recovery.sh 100000
	@missing=""; command -v wrk >/dev/null 2>&1 || missing=wrk; $(APT_INSTALL)
	@missing=""; command -v redis-server >/dev/null 2>&1 || missing=redis-server; $(APT_INSTALL)
	benches/shdict/capacity.sh
	FSYNC_MODES="off never interval always redis" benches/wrk/run.sh 10 16
	PIN=1 FSYNC_MODES="interval" benches/wrk/run.sh 10 16

# RFC 9421 B.2.5/B.2.6: ours beside the Rust crate httpsig (benches/peers, a crate of its own so
# that the library never depends on it) and the Python package http-message-signatures.
bench-peers: build
	$(CARGO) bench --locked --manifest-path benches/peers/Cargo.toml
	@python3 -c 'import http_message_signatures, requests' 2>/dev/null || \
	  python3 -m pip install -q http-message-signatures requests
	python3 benches/peers/python_peer.py

# Fuzzing (cargo-fuzz, libFuzzer): each target of fuzz/ for FUZZ_SECONDS (default 60) on its corpus
# under fuzz/corpus/<target>, which grows in place (commit what it adds); a crash is written under
# fuzz/artifacts/<target> and fails the run. make test replays both (tests/abi/fuzz_corpora.rs).
# cargo-fuzz passes nightly -Z flags to rustc: RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= json sf headers up42 rfc9421 senders journal record
fuzz: deps
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	$(CARGO) run --locked --example fuzz_seeds
	@for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 > target/fuzz-$$t.log 2>&1 || \
	    { tail -n 40 target/fuzz-$$t.log; exit 1; }; \
	  grep -E 'DONE|stat::number_of_executed_units|stat::peak_rss_mb' target/fuzz-$$t.log; \
	done

sign-example: build
	$(RELEASE_DIR)/up42wh-sign --event job --url http://127.0.0.1:9888/receive-webhooks

# make serve records where it listens in $(RUN_DIR)/served (shell assignments: public and admin
# URLs that reach it from this host, and the settings that restart needs). WHERE sets $$public and
# $$admin for the running server: the host's from that file, else the container's from compose.
SERVED = $(RUN_ABS)/served
WHERE = if $(HOST_RUNNING); then public=http://127.0.0.1:$(PORT) admin=$(ADMIN_URL); [ ! -f $(SERVED) ] || . $(SERVED); \
	elif $(CONTAINER_RUNNING); then \
	  public=http://$$($(COMPOSE_CMD) port up42webhooks 80); admin=http://$$($(COMPOSE_CMD) port up42webhooks 9889); \
	else echo "make $@: not running (make serve, or make run)" >&2; exit 1; fi
# A URL from this host to a listen address: 0.0.0.0 and [::] are reached on loopback, a bare port
# is one on loopback.
LOCAL_URL = a=$(firstword $(1)); port=$${a\#\#*:}; host=$${a%:*}; [ "$$host" != "$$a" ] || host=127.0.0.1; \
	case $$host in 0.0.0.0|'*') host=127.0.0.1 ;; '[::]') host='[::1]' ;; esac

# The secret from a file from the first command: `make secret` writes a random one here (mode
# 0600), and make serve uses it when no secret is given.
SECRET_FILE ?= $(RUN_DIR)/secret
# Which secret make serve starts with: UP42_WEBHOOK_SECRET (a value: never recorded), else the file
# UP42_WEBHOOK_SECRET_FILE or SECRET_FILE names (recorded by its absolute path, for make restart).
PICK_SECRET = secret_file=$${UP42_WEBHOOK_SECRET_FILE:-}; \
	if [ -z "$$UP42_WEBHOOK_SECRET$$secret_file" ] && [ -s '$(SECRET_FILE)' ]; then secret_file='$(abspath $(SECRET_FILE))'; fi; \
	case $$secret_file in ''|/*) ;; *) secret_file=$$(pwd)/$$secret_file ;; esac

# The make settings given now (command line or environment) and those from the last start.
GIVEN_NOW = $(foreach v,$(REMEMBER_VARS),$(if $(filter command line environment,$(origin $v)),$v))
KEPT_VARS = $(sort $(GIVEN_NOW) $(REMEMBERED))
SETTING_VALUE = $(if $(filter TLS_CERT TLS_KEY,$(1)),$(if $($(1)),$(abspath $($(1)))),$($(1)))
# The receiver's settings from the last start, for each not set now (UP42_WEBHOOK_SECRET given now
# wins over the last start's secret file); $$from_last names them.
LOAD_SETTINGS = from_last=""; if [ -f $(SETTINGS_ENV) ]; then \
	  while IFS= read -r line; do name=$${line%%=*}; \
	    case $$name in UP42_WEBHOOK_*) ;; *) continue ;; esac; \
	    if [ "$$name" = UP42_WEBHOOK_SECRET_FILE ] && [ -n "$${UP42_WEBHOOK_SECRET:-}" ]; then continue; fi; \
	    if ! env | grep -q "^$$name="; then export "$$line"; from_last="$$from_last $$name"; fi; \
	  done < $(SETTINGS_ENV); fi
# Writes both settings files once the receiver answers ($$secret_file: the secret's file, if any).
SAVE_SETTINGS = umask 077; \
	{ echo "\# make serve: the make settings of the last start (a setting given anew wins)"; \
	  $(foreach v,$(KEPT_VARS),printf 'ifeq ($$(origin %s),undefined)\n%s := %s\nREMEMBERED += %s\nendif\n' '$v' '$v' '$(call SETTING_VALUE,$v)' '$v';) \
	} > $(SETTINGS_MK); \
	{ env | grep '^UP42_WEBHOOK_' | grep -v -e '^UP42_WEBHOOK_SECRET=' -e '^UP42_WEBHOOK_SECRET_FILE=' -e '^UP42_WEBHOOK_ADMIN_TOKEN='; \
	  [ -z "$$secret_file" ] || echo "UP42_WEBHOOK_SECRET_FILE=$$secret_file"; } > $(SETTINGS_ENV)
# The first line of a start: the settings used and where each came from.
SAY_SETTINGS = given="$(foreach v,$(GIVEN_NOW),$(if $($v),$v=$($v)))"; \
	for n in $$(env | sed -n 's/^\(UP42_WEBHOOK_[A-Z_]*\)=.*/\1/p'); do \
	  case " $$from_last " in *" $$n "*) continue ;; esac; \
	  case $$n in UP42_WEBHOOK_SECRET|UP42_WEBHOOK_ADMIN_TOKEN) given="$$given $$n=(set)" ;; *) given="$$given $$n=$$(printenv $$n)" ;; esac; done; \
	last="$(foreach v,$(filter-out $(GIVEN_NOW),$(REMEMBERED)),$(if $($v),$v=$($v)))"; \
	for n in $$from_last; do last="$$last $$n=$$(printenv $$n)"; done; \
	line="settings:"; [ -z "$$(echo $$given)" ] || line="$$line given now:$$(echo " $$given" | tr -s ' ')"; \
	[ -z "$$(echo $$last)" ] || line="$$line$${given:+;} from the last start ($(RUN_DIR)/settings.*):$$(echo " $$last" | tr -s ' ')"; \
	[ -n "$$(echo $$given$$last)" ] || line="settings: the defaults"; \
	if [ -n "$${UP42_WEBHOOK_SECRET:-}" ]; then from=UP42_WEBHOOK_SECRET; else from=$${secret_file:-none}; fi; \
	echo "$$line (PORT $(PORT), ADMIN_PORT $(ADMIN_PORT); the secret: $$from)"

secret:
	@f='$(SECRET_FILE)'; if [ -s "$$f" ]; then echo "kept the secret in $$f (make serve uses it)"; exit 0; fi; \
	mkdir -p "$$(dirname "$$f")" && umask 077 && \
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$$f.tmp" && echo >> "$$f.tmp" && mv "$$f.tmp" "$$f" && \
	echo "wrote a random secret to $$f (readable by you only; make serve uses it)" && \
	echo "give UP42 the same secret when you create the webhook: cat $$f"

serve: build nginx-deps
	@if $(HOST_RUNNING); then public=?; admin=?; [ ! -f $(SERVED) ] || . $(SERVED); \
	  echo "already running: deliveries on $$public/receive-webhooks, admin on $$admin, run directory $(RUN_ABS) (make stop first)" >&2; exit 1; fi
	@$(LOAD_SETTINGS); $(PICK_SECRET); $(SAY_SETTINGS); \
	if [ -z "$$UP42_WEBHOOK_SECRET$$secret_file" ]; then \
	  echo "no secret: make secret writes a random one to $(SECRET_FILE) (then make serve), or set UP42_WEBHOOK_SECRET_FILE (one secret a line) or UP42_WEBHOOK_SECRET" >&2; exit 1; fi; \
	ADMIN_LISTEN='$(ADMIN_LISTEN)' TLS_CERT='$(if $(TLS_CERT),$(abspath $(TLS_CERT)))' \
	  TLS_KEY='$(if $(TLS_KEY),$(abspath $(TLS_KEY)))' ADMIN_ACCESS_LOG='$(ADMIN_ACCESS_LOG)' \
	  openresty/prefix.sh $(RUN_DIR) '$(LISTEN)' $(RELEASE_DIR) $(NGINX) || exit 1; \
	log=$(RUN_DIR)/logs/error.log; size=$$(cat $$log 2>/dev/null | wc -c); errors=$$(mktemp); \
	if [ -n "$$secret_file" ]; then export UP42_WEBHOOK_SECRET_FILE="$$secret_file"; fi; \
	if ! (umask 027; $(HOST_NGINX)) 2> $$errors; then $(call PORT_IN_USE,$$errors); cat $$errors >&2; rm -f $$errors; exit 1; fi; \
	rm -f $$errors; \
	$(call LOCAL_URL,$(LISTEN)); public=$(if $(TLS_CERT),https,http)://$$host:$$port; \
	$(call LOCAL_URL,$(ADMIN_LISTEN)); admin=http://$$host:$$port; \
	for i in $$(seq 1 50); do \
	  if curl -fsS $$admin/ping >/dev/null 2>&1; then \
	    umask 077; printf "public='%s'\nadmin='%s'\nLISTEN='%s'\nADMIN_LISTEN='%s'\nTLS_CERT='%s'\nTLS_KEY='%s'\nSECRET_FILE='%s'\nADMIN_ACCESS_LOG='%s'\n" \
	      "$$public" "$$admin" '$(LISTEN)' '$(ADMIN_LISTEN)' '$(if $(TLS_CERT),$(abspath $(TLS_CERT)))' \
	      '$(if $(TLS_KEY),$(abspath $(TLS_KEY)))' "$$secret_file" '$(ADMIN_ACCESS_LOG)' > $(SERVED); \
	    $(SAVE_SETTINGS); \
	    tail -c +$$((size + 1)) $$log | sed 's/, client: .*//' | \
	      sed -n 's/^[^[]*\[warn\] [^:]*: \(\[lua\] [^ ]* [^ ]* \)\{0,1\}\(up42webhooks: .*\)$$/warning: \2/p'; \
	    curl -fsS $$admin/stats 2>/dev/null | python3 -c "$$STORE_LINE" 2>/dev/null || true; \
	    echo "receiving on $$public/receive-webhooks (nginx listens on $(LISTEN))"; \
	    echo "dump and stats on $$admin/dump-webhooks and /stats (make dump, make stats)"; \
	    echo "the inbox page: $$admin/ in a browser on this machine (make open)"; \
	    echo "run directory $(RUN_ABS); logs: make logs, stop: make stop"; \
	    $(if $(filter 1,$(RECONCILE)),$(MAKE) --no-print-directory reconcile || \
	      echo "reconcile: see the line above; make reconcile tries again" >&2;) \
	    exit 0; fi; \
	  sleep 0.1; done; \
	echo "nginx did not answer on $$admin; $(RUN_DIR)/logs/error.log says:" >&2; \
	tail -n 20 $(RUN_DIR)/logs/error.log >&2; exit 1

# Which store the receiver uses and how many events it holds, from its /stats (make serve says it).
# With Redis, whether it keeps what it holds: without its append-only file every delivery is refused.
export STORE_LINE = import json, sys; b = json.load(sys.stdin)["backlog"]; r = b.get("redis"); j = b.get("journal"); print("store: " + ("Redis at %s, stream %s" % (r["address"], r["stream"]) if r else "the journal in %s" % j["dir"] if j else "memory only (UP42_WEBHOOK_JOURNAL=off: nothing survives a restart)") + ", %s events held" % b.get("events", "?") + ("; but Redis runs with %s, so it would lose events at its restart: every delivery is refused (503 store_not_durable) until you turn its persistence on (redis-cli CONFIG SET appendonly yes, and appendonly yes in redis.conf)" % r.get("persistence") if r and r.get("keeps_events") is False else ""))

# nginx could not bind a port (its error lines in file $(1)): one line naming the port, the
# process holding it when ss can tell, and the settings that choose another; exits.
PORT_IN_USE = bind=$$(sed -n 's/.*bind() to \([^ ]*\) failed (98: Address already in use).*/\1/p' $(1) | head -n 1); \
	if [ -n "$$bind" ]; then port=$${bind\#\#*:}; \
	  who=$$(ss -Hltnp "sport = :$$port" 2>/dev/null | sed -n 's/.*users:((\"\([^\"]*\)\",pid=\([0-9]*\).*/ by \1 (pid \2)/p' | head -n 1); \
	  echo "port $$port ($$bind) is in use$$who: choose another with PORT= (deliveries) or ADMIN_PORT= (the admin listener), e.g. make serve PORT=$$((port + 10))" >&2; \
	  rm -f $(1); exit 1; fi

# Waits (at most 10 s) for the host server's master to be gone after `nginx -s stop`.
stop:
	@stopped=""; \
	if $(HOST_RUNNING); then pid=$$(cat $(RUN_DIR)/logs/nginx.pid); \
	  $(HOST_NGINX) -s stop && for i in $$(seq 1 100); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	  if kill -0 $$pid 2>/dev/null; then echo "the host server (pid $$pid) did not stop within 10 s" >&2; exit 1; fi; \
	  stopped=1; echo "stopped the host server"; fi; \
	if $(CONTAINER_RUNNING); then \
	  $(COMPOSE_CMD) stop && stopped=1 && echo "stopped the container"; fi; \
	[ -n "$$stopped" ] || echo "not running"

# The host server's logs, followed while it runs; their last lines when it is stopped; else the
# container's.
# Each line is labelled with the log it comes from: "error.log: ..." (refusals, warnings) and
# "access.log: ..." (deliveries; admin requests only with ADMIN_ACCESS_LOG=on).
# mawk (Debian's default awk) reads a pipe in blocks: without -W interactive, make logs would show
# nothing while the receiver runs. gawk reads lines as they come and needs no option.
AWK_LINES := awk $(shell awk -W version 2>/dev/null | grep -q mawk && echo "-W interactive")
LABEL_LOGS = $(AWK_LINES) '/^==> .* <==$$/ { n = split($$2, p, "/"); label = p[n]; next } NF { print label ": " $$0; fflush() }'
logs:
	@if $(HOST_RUNNING); then \
	  tail -v -n 50 -F $(RUN_DIR)/logs/error.log $(RUN_DIR)/logs/access.log 2>/dev/null | $(LABEL_LOGS); exit 0; fi; \
	if $(CONTAINER_RUNNING); then \
	  exec $(COMPOSE_CMD) logs -f --tail=50; fi; \
	if [ -f $(RUN_DIR)/logs/error.log ]; then \
	  echo "(the host server is not running: the last lines of $(RUN_DIR)/logs/)"; \
	  tail -v -n 50 $(RUN_DIR)/logs/error.log $(RUN_DIR)/logs/access.log 2>/dev/null | $(LABEL_LOGS); exit 0; fi; \
	echo "not running, and no logs in $(RUN_DIR)/logs (make serve, or make run)" >&2; exit 1

# HUP: nginx re-reads its config, the Lua module and the certificate files (certbot's deploy hook
# can run `make -C /path/to/up42webhooks reload`). The running master keeps its environment, so
# no secret is needed here. nginx keeps the old config when the new one fails, and says so only
# in its log: the host's reload waits (at most 5 s) for new workers, or for that error.
reload:
	@reloaded=""; \
	if $(HOST_RUNNING); then pid=$$(cat $(RUN_DIR)/logs/nginx.pid); log=$(RUN_DIR)/logs/error.log; \
	  before=$$(pgrep -P $$pid | sort | tr '\n' ' '); size=$$(wc -c < $$log); \
	  $(HOST_NGINX) -s reload || exit 1; \
	  for i in $$(seq 1 50); do \
	    errors=$$(tail -c +$$((size + 1)) $$log | grep -E '\[(emerg|alert)\]|init_by_lua error' | head -n 3); \
	    if [ -n "$$errors" ]; then echo "$$errors" >&2; \
	      echo "the host server kept its old configuration: fix the above, then make reload" >&2; exit 1; fi; \
	    for w in $$(pgrep -P $$pid); do case " $$before" in *" $$w "*) ;; *) reloaded=1 ;; esac; done; \
	    [ -z "$$reloaded" ] || break; sleep 0.1; done; \
	  [ -n "$$reloaded" ] || { echo "the host server started no new workers within 5 s: see make logs" >&2; exit 1; }; \
	  echo "reloaded the host server"; fi; \
	if $(CONTAINER_RUNNING); then \
	  $(COMPOSE_CMD) kill -s HUP up42webhooks && reloaded=1 && echo "reloaded the container"; fi; \
	[ -n "$$reloaded" ] || { echo "not running" >&2; exit 1; }

# The host server: built, checked, and only then stopped and started again with the settings it
# was started with (recorded by make serve: its addresses, TLS files, the secret's file by its path,
# never a secret's value). Everything a start needs is checked first, and nothing is stopped when
# one fails: the secret (its file, or the environment it came from), the TLS files, the config
# (nginx -t). The container: its config tested, then restarted (it keeps its environment).
RESTART_CHECKS = . $(SERVED); \
	if [ -n "$$UP42_WEBHOOK_SECRET$$UP42_WEBHOOK_SECRET_FILE" ]; then :; \
	elif [ -n "$$SECRET_FILE" ]; then \
	  [ -r "$$SECRET_FILE" ] && [ -s "$$SECRET_FILE" ] || { echo "make $@: the secret file $$SECRET_FILE the receiver was started with is gone or unreadable; nothing was stopped" >&2; exit 1; }; \
	  export UP42_WEBHOOK_SECRET_FILE="$$SECRET_FILE"; \
	else echo "make $@: the receiver was started with UP42_WEBHOOK_SECRET from its shell's environment, which this one does not have: set it (or UP42_WEBHOOK_SECRET_FILE) and run make restart again; nothing was stopped (make secret keeps a secret in a file, which restarts find by themselves)" >&2; exit 1; fi; \
	for f in "$$TLS_CERT" "$$TLS_KEY"; do [ -z "$$f" ] || [ -r "$$f" ] || { echo "make $@: cannot read $$f, which the receiver was started with; nothing was stopped" >&2; exit 1; }; done; \
	[ -f $(RELEASE_DIR)/libup42webhooks.so ] || { echo "make $@: no $(RELEASE_DIR)/libup42webhooks.so; nothing was stopped" >&2; exit 1; }; \
	tested=$$($(HOST_NGINX) -t 2>&1) || { echo "$$tested" >&2; echo "make $@: the configuration does not pass nginx -t; nothing was stopped" >&2; exit 1; }

restart: build
	@if $(HOST_RUNNING); then $(RESTART_CHECKS); \
	  $(MAKE) --no-print-directory stop && $(RESTART_RECORDED); \
	elif $(CONTAINER_RUNNING); then \
	  $(COMPOSE_CMD) exec -T up42webhooks $(CONTAINER_CONFIGTEST) && $(COMPOSE_CMD) restart; \
	else echo "not running (make serve, or make run)" >&2; exit 1; fi

# make backup FILE=x.tgz / make restore FILE=x.tgz: the journal (events, salt, key mark) and the
# recorded settings in one archive (mode 0600); not the replay index, which a start rebuilds from
# the journal. A running receiver is checked as make restart
# checks it, stopped for the copy, and started again with its recorded settings. A restore sets
# the current journal aside (run/data.before-restore-<time>) and keeps the key mark above every key
# handed out before, by either journal: no key is handed out twice, so a consumer's position
# (since=K) stays good.
# The settings files say what it was started with; a run directory of a version before them has
# only the served file's.
RESTART_RECORDED = if [ -f $(SETTINGS_MK) ]; then $(MAKE) --no-print-directory serve; \
	else $(MAKE) --no-print-directory serve LISTEN="$$LISTEN" ADMIN_LISTEN="$$ADMIN_LISTEN" \
	TLS_CERT="$$TLS_CERT" TLS_KEY="$$TLS_KEY" ADMIN_ACCESS_LOG="$$ADMIN_ACCESS_LOG"; fi
# The highest key a journal's mark (journal.keys, in directory $(1)) says was or may have been
# handed out; 0 without one.
MARK_OF = { sed -n 's/^up42wh-keys reserved=\([0-9]*\) last=\([0-9]*\) .*/\1 \2/p' $(1)/journal.keys 2>/dev/null | \
	tr ' ' '\n'; echo 0; } | sort -n | tail -n 1

backup:
	@[ -n '$(FILE)' ] || { echo "make backup FILE=path.tgz" >&2; exit 1; }; \
	[ -d $(RUN_DIR)/data ] || { echo "make backup: no $(RUN_DIR)/data (no journal yet)" >&2; exit 1; }; \
	running=; if $(HOST_RUNNING); then $(RESTART_CHECKS); running=1; $(MAKE) --no-print-directory stop || exit 1; fi; \
	umask 077; tar -C $(RUN_DIR) -czf '$(abspath $(FILE))' --exclude=data/replay.index \
	  data $$([ -f $(SERVED) ] && echo served) || exit 1; \
	echo "backed up $(RUN_DIR)/data ($$(du -sh $(RUN_DIR)/data | cut -f1)) and the settings to $(FILE)"; \
	[ -z "$$running" ] || $(RESTART_RECORDED)

restore:
	@[ -n '$(FILE)' ] && [ -r '$(FILE)' ] || { echo "make restore FILE=path.tgz (a make backup archive)" >&2; exit 1; }; \
	tmp=$$(mktemp -d); tar -C $$tmp -xzf '$(FILE)' && [ -d $$tmp/data ] || \
	  { rm -rf $$tmp; echo "make restore: $(FILE) holds no data/ (not a make backup archive)" >&2; exit 1; }; \
	running=; if $(HOST_RUNNING); then $(RESTART_CHECKS); running=1; $(MAKE) --no-print-directory stop || exit 1; fi; \
	before=$$($(call MARK_OF,$(RUN_DIR)/data)); restored=$$($(call MARK_OF,$$tmp/data)); \
	keys=$$(printf '%s\n%s\n' "$$before" "$$restored" | sort -n | tail -n 1); \
	if [ -d $(RUN_DIR)/data ]; then aside=$(RUN_DIR)/data.before-restore-$$(date +%Y%m%d-%H%M%S); \
	  mv $(RUN_DIR)/data $$aside && echo "set the journal that was there aside: $$aside"; fi; \
	mkdir -p $(RUN_DIR) && mv $$tmp/data $(RUN_DIR)/data && rm -rf $$tmp && \
	printf 'up42wh-keys reserved=%s last=0 clean=0\n' "$$keys" > $(RUN_DIR)/data/journal.keys && \
	sync $(RUN_DIR)/data/journal.keys $(RUN_DIR)/data 2>/dev/null; \
	echo "restored $(FILE); new events go on from key $$((keys + 1)), above every key handed out before"; \
	if [ -n "$$running" ]; then $(RESTART_RECORDED); else echo "start it with make serve"; fi

# nginx -t: the host's config (the run directory make serve laid out) unless only the container
# runs. nginx -t does not run init_by_lua: configure{}'s settings are checked when nginx starts or
# reloads (make reload says when they fail).
configtest:
	@if $(CONTAINER_RUNNING) && ! { $(HOST_RUNNING); }; then \
	  exec $(COMPOSE_CMD) exec -T up42webhooks $(CONTAINER_CONFIGTEST); fi; \
	[ -f $(RUN_DIR)/conf/nginx.conf ] || { echo "no $(RUN_DIR)/conf/nginx.conf: make serve lays it out" >&2; exit 1; }; \
	$(HOST_NGINX) -t

# Posts a signed test event to the running server's public port (https, certificate unchecked,
# when it speaks TLS: this is a self-test, not a check of the certificate), then reads the admin
# port. Fails, with one line, when the post does not reach it or the event is not stored.
send-test: build
	@$(WHERE); insecure=; case $$public in https:*) insecure=--insecure ;; esac; \
	if [ -z "$$UP42_WEBHOOK_SECRET$$UP42_WEBHOOK_SECRET_FILE" ] && [ -n "$${SECRET_FILE:-}" ]; then \
	  export UP42_WEBHOOK_SECRET_FILE="$$SECRET_FILE"; fi; \
	cmd=$$($(RELEASE_DIR)/up42wh-sign --event job --status SUCCEEDED --url $$public/receive-webhooks) || exit 1; \
	out=$$(sh -c "$$cmd $$insecure -w '\n%{http_code}'" 2>&1); rc=$$?; \
	code=$$(printf '%s\n' "$$out" | tail -n 1); body=$$(printf '%s\n' "$$out" | sed '$$d'); \
	if [ $$rc != 0 ]; then echo "make send-test: cannot post to $$public/receive-webhooks: $$body" >&2; exit 1; fi; \
	case $$body in *'"msg":"stored"'*) ;; *) \
	  case $$body in *signature_mismatch*) hint=" (is UP42_WEBHOOK_SECRET here the secret the server has?)" ;; *) hint= ;; esac; \
	  echo "make send-test: not stored, HTTP $$code: $$body$$hint" >&2; exit 1 ;; esac; \
	echo "POST $$public/receive-webhooks -> $$body"; \
	echo "GET $$admin/dump-webhooks (last lines):"; \
	curl -fsS $$admin/dump-webhooks | tail -n 2

# The forwarder (up42wh forward, README "Act on events") in the foreground, reading the running
# receiver (make serve's admin address) with FORWARD_CONFIG; Ctrl-C stops it (in-flight attempts
# finish first). The receiver must declare its consumer: UP42_WEBHOOK_CONSUMERS=forward make serve.
# Your forward.toml when there is one, else the example as shipped: its programs and its state
# (../run/forward) are found from its own directory, so copy the directory to edit it
# (cp -r examples my-forward; make forward FORWARD_CONFIG=my-forward/forward.toml).
FORWARD_CONFIG ?= $(if $(wildcard forward.toml),forward.toml,examples/forward.toml)
forward: deps
	@[ -f '$(FORWARD_CONFIG)' ] || { echo "make forward: no $(FORWARD_CONFIG) (FORWARD_CONFIG=path names another file; examples/forward.toml is the example)" >&2; exit 1; }
	@echo "make forward: $(FORWARD_CONFIG) (Ctrl-C stops it)"
	@$(CARGO) build --release --locked -p up42wh
	@$(WHERE); exec $(RELEASE_DIR)/up42wh forward --config '$(FORWARD_CONFIG)' --receiver "$$admin"

# UP42's API (up42wh up42, README "Connect UP42"); the account's credentials from UP42_USERNAME and
# UP42_PASSWORD (or UP42_PASSWORD_FILE, UP42_CREDENTIALS_FILE). connect gives UP42 the running
# receiver's secret: UP42_WEBHOOK_SECRET, or the first line of the file it was started with.
connect: deps
	@[ -n '$(URL)' ] || { echo "make connect URL=https://your.host/receive-webhooks (UP42 delivers to https only)" >&2; exit 1; }
	@$(CARGO) build --release --locked -p up42wh
	@$(WHERE); file=$${UP42_WEBHOOK_SECRET_FILE:-$${SECRET_FILE:-}}; \
	  if [ -z "$$file" ] && [ -f secrets/up42_webhook_secret ]; then file=secrets/up42_webhook_secret; fi; \
	  exec $(RELEASE_DIR)/up42wh up42 connect --url '$(URL)' $${file:+--secret-file "$$file"}

# UP42's test event through the whole path, read at the running receiver's admin listener (URL=...
# picks the webhook when the workspace has several). Exit codes: up42wh up42 test --help.
up42-test: deps
	@$(CARGO) build --release --locked -p up42wh
	@$(WHERE); exec $(RELEASE_DIR)/up42wh up42 test --receiver "$$admin" $(if $(URL),--url '$(URL)')

# What UP42 notified while the receiver was down (README "Keep it running"), stored in the running
# receiver; the watermark in run/reconcile.json. SINCE=30d looks further back than it.
reconcile: deps
	@$(CARGO) build --release --locked -p up42wh
	@$(WHERE); exec $(RELEASE_DIR)/up42wh up42 reconcile --receiver "$$admin" --state run/reconcile.json $(if $(SINCE),--since '$(SINCE)')

# The forwarder's figures (README "Act on events"): events a second to a sink that answers at once,
# the latency from the receiver's 200 to the sink, and a program run per event beside Debian's
# webhook (adnanh/webhook), against the release build.
bench-forward: build nginx-deps
	@missing=""; command -v webhook >/dev/null 2>&1 || missing=webhook; $(APT_INSTALL)
	$(CARGO) build --release --locked -p up42wh
	UP42WH_BIN=$(abspath $(RELEASE_DIR))/up42wh $(CARGO) test --locked --test forward -- --ignored bench_ --nocapture --test-threads 1

# up42wh up42 download's figures (README "Get the imagery"): a 1 GiB asset from the tests' stand-in
# of UP42's storage, against curl -o on the same signed URL, and the program's peak RSS.
bench-download: deps
	$(CARGO) build --release --locked -p up42wh
	UP42WH_TEST_UP42WH=$(abspath $(RELEASE_DIR))/up42wh $(CARGO) test --locked --test up42 -- --ignored bench_download --nocapture --test-threads 1

# The inbox page (README "Look at events"): opened in this machine's browser when it has a desktop
# session, its address printed either way.
open:
	@$(WHERE); echo "the inbox page: $$admin/"; \
	if [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ] && command -v xdg-open >/dev/null 2>&1; then \
	  xdg-open "$$admin/" >/dev/null 2>&1 & fi

# The running receiver's admin address, for programs: admin=$$(make admin-url).
admin-url:
	@$(WHERE); echo "$$admin"

# The admin endpoints, for people and jq: make dump Q='?status=FAILED&live=true' | jq ... The
# receiver's own reason (its JSON) when it answers an error, and a failure; the stats pretty-printed
# (jq, else Python) unless they are not JSON (Q='?format=prometheus').
ADMIN_GET = out=$$(mktemp); code=$$(curl -sS -o $$out -w '%{http_code}' "$$admin$(1)") || { rm -f $$out; exit 1; }; \
	if [ "$$code" -ge 400 ]; then echo "make $@: $$admin$(1) answered $$code: $$(cat $$out)" >&2; rm -f $$out; exit 1; fi
dump:
	@$(WHERE); $(call ADMIN_GET,/dump-webhooks$(Q)); cat $$out; rm -f $$out

stats:
	@$(WHERE); $(call ADMIN_GET,/stats$(Q)); \
	case $$(head -c 1 $$out) in '{') \
	  if command -v jq >/dev/null 2>&1; then jq . $$out; else python3 -m json.tool $$out; fi ;; \
	  *) cat $$out ;; esac; rm -f $$out

# Build output and the run directory's generated parts. The journal (run/data, the container's
# volume) holds stored events and stays: delete it by hand when you mean to.
clean:
	@if [ -n "$(COMPOSE)" ] && docker info >/dev/null 2>&1; then $(COMPOSE_CMD) down --rmi local; fi
	$(CARGO) clean
	rm -rf dist $(addprefix $(RUN_DIR)/,conf logs tmp lua lib html)
	@[ ! -d $(RUN_DIR)/data ] || echo "kept $(RUN_DIR)/data (the journal: every stored event)"

# --- Docker (make run) ------------------------------------------------------------------------
# `docker compose` (v2) or `docker-compose` (v1), whichever is here.
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
# Which image: openresty (OpenResty's Alpine image, amd64 and arm64) or debian (Debian's nginx,
# Dockerfile.debian: amd64, arm64 and armhf, so every Raspberry Pi).
FLAVOR ?= openresty
# The Debian image's parts. ARCH: the machine it is for (this one's unless told). LIB: where its
# library comes from: source (Dockerfile.lib, built in the official Rust image) or host (this
# machine's make build, or make cross for an ARM ARCH). BASE_IMAGE: Debian's bookworm-slim, or a
# base made without a registry by `make debian-base` (debootstrap, kept under target/docker/).
NATIVE_ARCH := $(shell a=$$(dpkg --print-architecture 2>/dev/null || uname -m); case $$a in \
	(x86_64) a=amd64 ;; (aarch64) a=arm64 ;; (armv7l|armhf) a=armhf ;; esac; echo $$a)
ARCH ?= $(NATIVE_ARCH)
LIB ?= source
BASE_IMAGE ?= debian:bookworm-slim
PLATFORM = $(or $(PLATFORM_$(ARCH)),$(error ARCH=$(ARCH): give amd64, arm64 or armhf))
PLATFORM_amd64 = linux/amd64
PLATFORM_arm64 = linux/arm64
PLATFORM_armhf = linux/arm/v7
# LIB=host: this machine's release build for its own ARCH, make cross's for an ARM one.
HOST_LIB = $(if $(filter $(NATIVE_ARCH),$(ARCH)),$(RELEASE_DIR),$(DIST)/$(or $(CROSS_TARGET_$(ARCH)),$(error LIB=host: make cross builds $(CROSS_ARCHS) only)))
LIB_IMAGE = up42webhooks-lib:$(LIB)-$(ARCH)
DEBIAN_IMAGE ?= up42webhooks:debian-$(ARCH)
# The public listener is published where LISTEN says (loopback unless opened), as make serve
# listens; TLS on the same address, port TLS_PORT.
PUBLISH = $(if $(findstring :,$(LISTEN)),$(LISTEN),127.0.0.1:$(LISTEN))
# The Docker secret file when it exists (or UP42_WEBHOOK_SECRET_HOST_FILE names one elsewhere); the
# development override (checkout mounted) unless PROD=1.
# TLS in the container (make run TLS_CERT=... TLS_KEY=...): docker-compose.tls.yml mounts TLS_DIR,
# the certificates' directory, at the same path. For certbot that is /etc/letsencrypt (live/ holds
# links into archive/, which renewals move), found from the path; else the certificate's directory.
TLS_DIR ?= $(if $(findstring /live/,$(TLS_CERT)),$(firstword $(subst /live/, ,$(abspath $(TLS_CERT)))),$(patsubst %/,%,$(dir $(abspath $(TLS_CERT)))))
TLS_PORT ?= 443
DEBIAN = $(filter debian,$(FLAVOR))
COMPOSE_FILES = -f docker-compose.yml \
	$(if $(DEBIAN),-f docker-compose.debian.yml) \
	$(if $(or $(wildcard secrets/up42_webhook_secret),$(UP42_WEBHOOK_SECRET_HOST_FILE)),-f docker-compose.secret.yml) \
	$(if $(TLS_CERT),-f docker-compose.tls.yml) \
	$(if $(PROD),,-f $(if $(DEBIAN),docker-compose.debian-dev.yml,docker-compose.override.yml))
comma := ,
space := $(subst ,, )
# The forwarder's service (the compose profile "forward"): make run FORWARD=1 starts it beside the
# receiver, with FORWARD_CONFIG's directory mounted read-only; the other targets (stop, logs, list,
# restart, clean) act on it whenever it is there.
COMPOSE_PROFILES_ON = forward,reconcile
COMPOSE_CMD = env LISTEN=$(PUBLISH) ADMIN_PORT=$(ADMIN_PORT) COMPOSE_PROFILES=$(COMPOSE_PROFILES_ON) \
	FORWARD_DIR=$(abspath $(dir $(FORWARD_CONFIG))) FORWARD_FILE=$(notdir $(FORWARD_CONFIG)) \
	$(if $(filter 1,$(FORWARD)),UP42_WEBHOOK_CONSUMERS=$${UP42_WEBHOOK_CONSUMERS:-forward}) \
	$(if $(filter 1,$(FORWARD) $(RECONCILE)),UP42_WEBHOOK_ADMIN_HOSTS="up42webhooks:9889 $$UP42_WEBHOOK_ADMIN_HOSTS") \
	$(if $(DEBIAN),DEBIAN_IMAGE=$(DEBIAN_IMAGE) LIB_IMAGE=$(LIB_IMAGE) BASE_IMAGE=$(BASE_IMAGE)) \
	$(if $(TLS_CERT),TLS_CERT=$(abspath $(TLS_CERT)) TLS_KEY=$(abspath $(TLS_KEY)) TLS_DIR=$(TLS_DIR) TLS_LISTEN=$(firstword $(subst :, ,$(PUBLISH))):$(TLS_PORT)) \
	$(COMPOSE) $(COMPOSE_FILES)
# nginx -t in the running container: each image's own script (openresty/configtest.sh), which
# reads where that image keeps its nginx and prefix from its environment.
CONTAINER_CONFIGTEST = up42webhooks-configtest

docker-check:
	@command -v docker >/dev/null 2>&1 || { echo "make run needs Docker (the docker command); without it, make serve runs the same on this host" >&2; exit 1; }
	@[ -n "$(COMPOSE)" ] || { echo "make run needs docker compose (the compose plugin, or docker-compose)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "the Docker engine does not answer (docker info failed): start it, or use make serve" >&2; exit 1; }

# What building images without a registry needs (the container tests, make debian-base): the
# engine, debootstrap, and qemu-user-static with its binfmt handlers for the ARM images.
# Only root installs and registers them; elsewhere the container tests say why they are skipped.
docker-deps:
	@if [ "$$(id -u)" != 0 ]; then echo "docker-deps: not root, nothing installed (the container tests need the engine)"; exit 0; fi; \
	missing=""; \
	command -v dockerd >/dev/null 2>&1 || missing="$$missing docker.io"; \
	command -v debootstrap >/dev/null 2>&1 || missing="$$missing debootstrap"; \
	[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || missing="$$missing qemu-user-static"; \
	command -v update-binfmts >/dev/null 2>&1 || missing="$$missing binfmt-support"; \
	$(APT_INSTALL); \
	[ -f /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || \
	  echo "cannot mount binfmt_misc: ARM images will not run here" >&2; \
	for h in qemu-aarch64 qemu-arm; do grep -qs enabled /proc/sys/fs/binfmt_misc/$$h || \
	  update-binfmts --enable $$h >/dev/null 2>&1 || \
	  echo "cannot register $$h with binfmt_misc: ARM images will not run here" >&2; done

# A Debian bookworm base image for ARCH without a registry (debootstrap, then docker import):
# up42webhooks-base:bookworm-ARCH; use it with BASE_IMAGE=up42webhooks-base:bookworm-ARCH.
debian-base: docker-check
	docker/bootstrap-base.sh $(ARCH) up42webhooks-base:bookworm-$(ARCH)

# The image for FLAVOR (and, for debian, ARCH), without starting it.
image: docker-check
ifeq ($(FLAVOR),debian)
ifeq ($(LIB),host)
	@if [ "$(ARCH)" = "$(NATIVE_ARCH)" ]; then $(MAKE) --no-print-directory build && \
	    $(CARGO) build --release --locked -p up42wh; \
	  elif [ ! -f $(HOST_LIB)/libup42webhooks.so ] || [ ! -f $(HOST_LIB)/up42wh ]; then \
	    $(MAKE) --no-print-directory cross; fi
	@# An image of two files, FROM scratch (its context holds only them).
	ctx=$$(mktemp -d) && cp $(HOST_LIB)/libup42webhooks.so $(HOST_LIB)/up42wh $$ctx/ && \
	  printf 'FROM scratch\nCOPY libup42webhooks.so up42wh /\n' | \
	  docker build -q --platform $(PLATFORM) -t $(LIB_IMAGE) -f - $$ctx; s=$$?; rm -rf $$ctx; exit $$s
else ifeq ($(LIB),source)
	docker build --platform $(PLATFORM) -f Dockerfile.lib -t $(LIB_IMAGE) .
else
	$(error LIB=$(LIB): give source or host)
endif
	docker build --platform $(PLATFORM) -f Dockerfile.debian --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	  --build-arg LIB_IMAGE=$(LIB_IMAGE) -t $(DEBIAN_IMAGE) .
else ifeq ($(FLAVOR),openresty)
	$(COMPOSE_CMD) build
else
	$(error FLAVOR=$(FLAVOR): give openresty or debian)
endif

# Builds the image when its inputs changed (Docker's layer cache), then starts it detached.
# FORWARD=1: the forwarder too, in its own container; the receiver then declares its consumer
# (UP42_WEBHOOK_CONSUMERS, "forward" unless set), answers to the name the forwarder reaches it by
# (UP42_WEBHOOK_ADMIN_HOSTS gains up42webhooks:9889), and both need UP42_WEBHOOK_ADMIN_TOKEN.
# RECONCILE=1: up42wh up42 reconcile too, every 15 minutes (README "Keep it running"), with the
# UP42 account (UP42_USERNAME, UP42_PASSWORD) and UP42_WEBHOOK_ADMIN_TOKEN.
run: COMPOSE_PROFILES_ON = $(subst $(space),$(comma),$(strip $(if $(filter 1,$(FORWARD)),forward) $(if $(filter 1,$(RECONCILE)),reconcile)))
run: docker-check
	@if [ -z "$$UP42_WEBHOOK_SECRET" ] && [ ! -f secrets/up42_webhook_secret ] && [ -z "$$UP42_WEBHOOK_SECRET_HOST_FILE" ]; then \
	  echo "set UP42_WEBHOOK_SECRET, or put the secret in secrets/up42_webhook_secret (a Docker secret)" >&2; exit 1; fi
ifeq ($(FORWARD),1)
	@[ -f '$(FORWARD_CONFIG)' ] || { echo "make run FORWARD=1: no $(FORWARD_CONFIG): FORWARD_CONFIG=path names another file; examples/forward.toml is the example" >&2; exit 1; }
	@[ -n "$$UP42_WEBHOOK_ADMIN_TOKEN" ] || { echo "make run FORWARD=1: set UP42_WEBHOOK_ADMIN_TOKEN (the forwarder's container reaches the receiver's admin listener with it)" >&2; exit 1; }
endif
ifeq ($(RECONCILE),1)
	@[ -n "$$UP42_WEBHOOK_ADMIN_TOKEN" ] || { echo "make run RECONCILE=1: set UP42_WEBHOOK_ADMIN_TOKEN (the reconciler's container reaches the receiver's admin listener with it)" >&2; exit 1; }
	@[ -n "$$UP42_USERNAME" ] || { echo "make run RECONCILE=1: set UP42_USERNAME and UP42_PASSWORD (the UP42 account whose orders and jobs it reads)" >&2; exit 1; }
endif
ifeq ($(FLAVOR),debian)
	@# BUILD=0: the image as it is (one loaded with docker load, say).
	@[ "$(BUILD)" = 0 ] || $(MAKE) --no-print-directory image
	$(COMPOSE_CMD) up -d --no-build
else
	$(COMPOSE_CMD) up -d --build
endif
	@for i in $$(seq 1 100); do \
	  curl -fsS $(ADMIN_URL)/ping >/dev/null 2>&1 && { \
	    echo "receiving on http://$(PUBLISH)/receive-webhooks$(if $(TLS_CERT), and https on port $(TLS_PORT))"; \
	    echo "dump and stats on $(ADMIN_URL)/dump-webhooks and /stats (loopback only)"; \
	    echo "the inbox page: $(ADMIN_URL)/ (make open)"; \
	    $(if $(filter 1,$(FORWARD)),echo "forwarding with $(FORWARD_CONFIG) as a consumer of $${UP42_WEBHOOK_CONSUMERS:-forward} (make logs; its status: $(COMPOSE) exec forward up42wh forward status)";) \
	    $(if $(filter 1,$(RECONCILE)),echo "reconciling with UP42 every $${RECONCILE_EVERY:-15m} (make logs)";) \
	    echo "logs: make logs, stop: make stop"; exit 0; }; \
	  sleep 0.2; done; \
	echo "the container does not answer on port $(ADMIN_PORT); its logs:" >&2; $(COMPOSE_CMD) logs --tail=20 >&2; exit 1

list: docker-check
	@$(COMPOSE_CMD) ps

