/*
 * Verifies one delivery through the C ABI, as a C caller would: proves that include/up42webhooks.h
 * and the cdylib agree. Built by tests/abi/c_abi.rs with -Wall -Wextra -Werror.
 *
 * usage: verify SECRET BODY_HEX NOW NAME VALUE [NAME VALUE ...]
 * Prints the result name of up42wh_verify, then of up42wh_verify_raw, then "sign-ok" if signing the
 * same body with the same `created` reproduces the Content-Digest and Signature values given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "up42webhooks.h"

#define MAX_HEADERS 16

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap) {
        n = cap;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned int b = 0;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1) {
            return 0;
        }
        out[i] = (uint8_t)b;
    }
    return n;
}

static const char *header_value(int argc, char **argv, const char *name) {
    for (int i = 4; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return "";
}

int main(int argc, char **argv) {
    if (argc < 4 || (argc - 4) % 2 != 0 || (argc - 4) / 2 > MAX_HEADERS) {
        fprintf(stderr, "usage: verify SECRET BODY_HEX NOW NAME VALUE ...\n");
        return 2;
    }
    static uint8_t body[1 << 17];
    size_t body_len = unhex(argv[2], body, sizeof body);
    int64_t now = strtoll(argv[3], NULL, 10);

    up42wh_slice secret = {(const uint8_t *)argv[1], strlen(argv[1])};
    up42wh_key *key = NULL;
    up42wh_result rc = up42wh_key_new(&secret, 1, &key);
    if (rc != UP42WH_RESULT_OK) {
        fprintf(stderr, "key: %s\n", up42wh_result_message(rc));
        return 1;
    }

    up42wh_header headers[MAX_HEADERS];
    char raw[8192];
    size_t raw_len = (size_t)snprintf(raw, sizeof raw, "POST /receive-webhooks HTTP/1.1\r\n");
    size_t count = 0;
    for (int i = 4; i + 1 < argc; i += 2, count++) {
        headers[count].name = (const uint8_t *)argv[i];
        headers[count].name_len = strlen(argv[i]);
        headers[count].value = (const uint8_t *)argv[i + 1];
        headers[count].value_len = strlen(argv[i + 1]);
        raw_len += (size_t)snprintf(raw + raw_len, sizeof raw - raw_len, "%s: %s\r\n", argv[i], argv[i + 1]);
    }

    up42wh_options opts;
    up42wh_options_init(&opts);
    up42wh_verified out;
    memset(&out, 0, sizeof out);
    rc = up42wh_verify(key, headers, count, body, body_len, now, &opts, &out);
    printf("%s\n", up42wh_result_name(rc));
    rc = up42wh_verify_raw(key, (const uint8_t *)raw, raw_len, body, body_len, now, NULL, NULL);
    printf("%s\n", up42wh_result_name(rc));

    up42wh_sign_options sopts;
    up42wh_sign_options_init(&sopts);
    const char *digest = header_value(argc, argv, "Content-Digest");
    if (strncmp(digest, "sha-256", 7) == 0) {
        sopts.digest = UP42WH_DIGEST_SHA256;
    } else if (strncmp(digest, "sha-512", 7) == 0) {
        sopts.digest = UP42WH_DIGEST_SHA512;
    }
    sopts.byte_sequence = strchr(header_value(argc, argv, "Signature"), ':') != NULL;
    up42wh_signed sig;
    rc = up42wh_sign(key, body, body_len, 1700000000, &sopts, &sig);
    if (rc == UP42WH_RESULT_OK && strcmp((const char *)sig.content_digest, digest) == 0 &&
        strcmp((const char *)sig.signature, header_value(argc, argv, "Signature")) == 0 &&
        sig.signature_len == strlen((const char *)sig.signature)) {
        printf("sign-ok\n");
    } else {
        printf("sign-differs %s\n", up42wh_result_name(rc));
    }
    up42wh_key_free(key);
    up42wh_key_free(NULL);
    return 0;
}
