# syntax=docker/dockerfile:1
# up42webhooks in OpenResty's Alpine image: `make run` (docker compose) builds and starts it.
#   docker build -t up42webhooks .
# The image carries no secret: give UP42_WEBHOOK_SECRET in the environment, or a Docker secret file
# named by UP42_WEBHOOK_SECRET_FILE (docker-compose.yml does one or the other).

# Both pinned. The builder's Rust is the one the project's tests run on; OpenResty's Alpine
# flavour is published for linux/amd64 and linux/arm64.
ARG RUST_IMAGE=rust:1.95.0-alpine
ARG OPENRESTY_IMAGE=openresty/openresty:1.27.1.2-0-alpine

# The library, built for the runtime's C library. Alpine's is musl, and Rust links musl programs
# statically by default; a shared object that nginx can dlopen needs the dynamic C runtime. The
# up42wh program (the compose service "forward") is built beside it; its TLS (ring) needs gcc.
FROM ${RUST_IMAGE} AS builder
RUN apk add --no-cache musl-dev gcc
WORKDIR /src
COPY Cargo.toml Cargo.lock cbindgen.toml ./
COPY src ./src
# The workspace's other member: the up42wh program.
COPY up42wh ./up42wh
# Cargo.toml names the benchmarks: their files must be there for it to build anything.
COPY benches/verify.rs ./benches/verify.rs
COPY benches/journal.rs ./benches/journal.rs
COPY benches/index.rs ./benches/index.rs
ENV RUSTFLAGS="-C target-feature=-crt-static" CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --lib && cargo build --release --locked -p up42wh

# OpenResty as its image expects to run: its own nginx.conf, which includes /etc/nginx/conf.d/*.conf
# inside http {}, logs linked to the container's stdout and stderr, SIGQUIT to stop. default.conf
# finds the Lua module under $prefix/lua and the library under $prefix/lib.
FROM ${OPENRESTY_IMAGE}
COPY --from=builder /src/target/release/libup42webhooks.so /usr/local/openresty/nginx/lib/libup42webhooks.so
COPY --from=builder /src/target/release/up42wh /usr/local/bin/up42wh
COPY lua/ /usr/local/openresty/nginx/lua/
COPY openresty/html/ /usr/local/openresty/nginx/html/
COPY openresty/default.conf /etc/nginx/conf.d/default.conf
# The image's nginx.conf gives each worker 1024 connections: as openresty/nginx.conf does, 8192, so
# that held or abandoned admin connections never take the last one a delivery needs (the build
# fails if the file no longer has the lines this changes).
RUN conf=/usr/local/openresty/nginx/conf/nginx.conf && \
    sed -i -e 's/^\([[:space:]]*worker_connections[[:space:]]\{1,\}\)[0-9]\{1,\};/\18192;/' \
        -e '/^events[[:space:]]*{/i worker_rlimit_nofile 20000;' "$conf" && \
    grep -q 'worker_connections[[:space:]]*8192;' "$conf" && grep -q '^worker_rlimit_nofile 20000;' "$conf"
COPY openresty/listen.sh /usr/local/bin/up42webhooks-listen
COPY openresty/docker-entrypoint.sh /usr/local/bin/up42webhooks-entrypoint
COPY openresty/healthcheck.sh /usr/local/bin/up42webhooks-health
COPY openresty/configtest.sh /usr/local/bin/up42webhooks-configtest
# The admin listener trusts loopback and the Docker host: the host's published 127.0.0.1 port
# arrives from the network's gateway (not a secret; with --network host, set it to loopback).
# The journal lives in a volume (docker-compose.yml names one), owned by the workers' user.
ENV UP42_WEBHOOK_ADMIN_ALLOW="loopback,gateway" UP42_WEBHOOK_JOURNAL_DIR="/var/lib/up42webhooks"
RUN install -d -o nobody -m 0700 /var/lib/up42webhooks /var/lib/up42wh
VOLUME /var/lib/up42webhooks
# The config is tested at build time, with the listen files the entrypoint writes. nginx -t does
# not run init_by_lua (configure{}'s checks run at start); the placeholder secret, which lives only
# in this command, keeps the test independent of that.
RUN UP42_WEBHOOK_SECRET=placeholder-for-nginx-t up42webhooks-entrypoint /usr/local/openresty/bin/openresty -t -q
# 80: deliveries; 443: deliveries over TLS, when a certificate is mounted; 9889: the admin listener.
EXPOSE 80 443 9889
# The admin listener's /ping, which loopback reaches over plain HTTP whether or not the public one
# speaks TLS (healthcheck.sh: busybox wget here, the Alpine flavour has no curl).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/up42webhooks-health"]
# Setting an ENTRYPOINT clears the base image's CMD: name it again.
ENTRYPOINT ["/usr/local/bin/up42webhooks-entrypoint"]
CMD ["/usr/local/openresty/bin/openresty", "-g", "daemon off;"]
