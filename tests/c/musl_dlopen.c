/*
 * Loads libup42webhooks.so with dlopen, as nginx's LuaJIT does, and verifies one delivery. Built
 * with musl-gcc by tests/operations/docker.rs, so that musl's own dynamic loader does the loading: the check
 * that the library built for OpenResty's Alpine image works under musl.
 *
 * usage: musl_dlopen LIBRARY SECRET RAW_HEADER_FILE BODY_FILE NOW
 * Prints the library's version, then the result name of up42wh_verify_raw.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "up42webhooks.h"

static size_t slurp(const char *path, uint8_t *out, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    size_t n = fread(out, 1, cap, f);
    fclose(f);
    return n;
}

/* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
#define LOAD(lib, name) ((__typeof__(&name))must(dlsym(lib, #name), #name))

static void *must(void *p, const char *what) {
    if (!p) {
        fprintf(stderr, "dlsym %s: %s\n", what, dlerror());
        exit(2);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: musl_dlopen LIBRARY SECRET RAW_HEADER_FILE BODY_FILE NOW\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    static uint8_t raw[1 << 14], body[1 << 17];
    size_t raw_len = slurp(argv[3], raw, sizeof raw);
    size_t body_len = slurp(argv[4], body, sizeof body);

    up42wh_slice secret = {(const uint8_t *)argv[2], strlen(argv[2])};
    up42wh_key *key = NULL;
    if (LOAD(lib, up42wh_key_new)(&secret, 1, &key) != UP42WH_RESULT_OK) {
        fprintf(stderr, "up42wh_key_new failed\n");
        return 2;
    }
    up42wh_verified out;
    up42wh_result rc = LOAD(lib, up42wh_verify_raw)(key, raw, raw_len, body, body_len,
                                                    strtoll(argv[5], NULL, 10), NULL, &out);
    printf("%s\n%s\n", LOAD(lib, up42wh_version)(), LOAD(lib, up42wh_result_name)(rc));
    LOAD(lib, up42wh_key_free)(key);
    return dlclose(lib) == 0 ? 0 : 2;
}
