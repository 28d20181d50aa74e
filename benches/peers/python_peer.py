#!/usr/bin/env python3
"""RFC 9421 Appendix B.2.5 and B.2.6 verified by the Python package http-message-signatures, for
the peer comparison (make bench-peers): first shown to accept each vector and to refuse it with the
covered Date one second later, then timed with timeit (best of 5 rounds of 2,000)."""
import base64
import pathlib
import timeit

import requests
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "tests/vectors/rfc9421"


def vector(name):
    return (VECTORS / name).read_text()


class Keys(HTTPSignatureKeyResolver):
    def resolve_public_key(self, key_id):
        if key_id == "test-shared-secret":
            return base64.b64decode(vector("test_shared_secret.b64").strip())
        if key_id == "test-key-ed25519":
            return vector("test_key_ed25519_pub.pem").encode()
        return None


def request(b, date_shift=False):
    head, body = vector("b2_test_request.txt").split("\n\n", 1)
    headers = {}
    for line in head.splitlines()[1:]:
        name, value = line.split(":", 1)
        headers[name] = value.strip()
    if date_shift:
        headers["Date"] = headers["Date"].replace("02:07:55", "02:07:56")
    headers["Signature-Input"] = vector(f"{b}_signature_input.txt").strip()
    headers["Signature"] = vector(f"{b}_signature.txt").strip()
    return requests.Request("POST", "https://example.com/foo?param=Value&Pet=dog", headers=headers,
                            data=body.encode()).prepare()


def main():
    keys = Keys()
    for name, b, alg in (("hmac", "b25", algorithms.HMAC_SHA256), ("ed25519", "b26", algorithms.ED25519)):
        verifier = HTTPMessageVerifier(signature_algorithm=alg, key_resolver=keys)
        good, changed = request(b), request(b, date_shift=True)
        verifier.verify(good, max_age=None)
        try:
            verifier.verify(changed, max_age=None)
            raise SystemExit(f"http-message-signatures accepted a changed {b}")
        except Exception:
            pass
        n = 2000
        best = min(timeit.repeat(lambda: verifier.verify(good, max_age=None), number=n, repeat=5)) / n
        print(f"peers/{name}/http-message-signatures: {best * 1e6:.1f} us per verification")


if __name__ == "__main__":
    main()
