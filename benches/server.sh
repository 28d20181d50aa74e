# Sourced by the benchmark scripts: the nginx to run and a run directory for it.
#   bench_server ROOT DIR   makes DIR with openresty/prefix.sh from checkout ROOT (its release
#                           library), on free loopback ports $port (public) and $admin, and removes
#                           DIR/conf/default.conf for the caller to write its own variant.
nginx=$(command -v openresty || command -v nginx || echo /usr/sbin/nginx)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

bench_server() {
    [ -f "$1/target/release/libup42webhooks.so" ] || { echo "build first: make build" >&2; exit 1; }
    port=$(free_port)
    admin=$(free_port)
    ADMIN_LISTEN="127.0.0.1:$admin" "$1/openresty/prefix.sh" "$2" "$port" "$1/target/release" "$nginx" >/dev/null
    rm "$2/conf/default.conf"
}
