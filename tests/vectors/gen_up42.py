#!/usr/bin/env python3
"""Reference signer for UP42 webhook deliveries, independent of the Rust code.

Writes the vectors that tests/abi/up42_vectors.rs checks, as JSON on stdout (committed as up42.json; the
test reruns this script and compares). Only the standard library: hmac, hashlib, base64.

UP42's scheme: Content-Digest = SHA-256=:base64(sha256(body)):, Signature-Input lists the covered
header fields, the signed string is their values concatenated, Signature = label=base64(HMAC-SHA256).
"""
import base64
import hashlib
import hmac
import json
import sys

CREATED = 1_700_000_000
SECRETS = {
    "article": "The quick fox jumped over the lazy dog",
    "api": "QWZTFnMEXhqZKNmu",
    "unicode": "r\u00f6tated-s\u00e9cret-\u2713",
}
PATTERN = '{"event":"job.status","liveMode":false,"body":{"status":"RUNNING"}}\n'


def body_spec(kind):
    """A body and how the test rebuilds it (hex for small ones, a repeated text for large ones)."""
    if kind == "empty":
        return b"", {"hex": ""}
    if kind == "one-byte":
        return b"{", {"hex": b"{".hex()}
    if kind == "binary":
        data = bytes([0, 255, 13, 10, 128, 34, 92])
        return data, {"hex": data.hex()}
    if kind == "non-ascii":
        data = json.dumps(
            {"event": "order.status", "messageId": "m-\u00fc", "body": {"orderId": "\u5730\u7403", "status": "FULFILLED"}},
            ensure_ascii=False,
        ).encode("utf-8")
        return data, {"hex": data.hex()}
    sizes = {"1k": 1024, "64k": 65536, "1m": 1 << 20, "1m+1": (1 << 20) + 1}
    n = sizes[kind]
    data = (PATTERN * (n // len(PATTERN) + 1)).encode()[:n]
    return data, {"repeat": PATTERN, "len": n}


def b64(data):
    return base64.b64encode(data).decode()


def content_digest(body, spelling):
    parts = []
    for alg in spelling.split("+"):
        if alg in ("SHA-256", "sha-256"):
            parts.append(f"{alg}=:{b64(hashlib.sha256(body).digest())}:")
        elif alg == "sha-512":
            parts.append(f"sha-512=:{b64(hashlib.sha512(body).digest())}:")
        else:
            raise ValueError(alg)
    return ", ".join(parts)


def signed(body, secret, *, digest="SHA-256", sig_form="plain", label="up42-sig", created=CREATED,
           params=None, names=("Content-Digest", "Signature-Input", "Signature")):
    cd = content_digest(body, digest)
    params = params if params is not None else f';keyid="secret";alg=hmac-sha256;created={created}'
    sig_input = f'{label}=("content-digest"){params}'
    tag = b64(hmac.new(secret.encode("utf-8"), cd.encode(), hashlib.sha256).digest())
    sig = f"{label}=:{tag}:" if sig_form == "bytes" else f"{label}={tag}"
    return [[names[0], cd], [names[1], sig_input], [names[2], sig]]


def vector(name, body_kind, headers, *, secrets=("article",), now=CREATED + 10, expect="ok", key_index=0):
    _, spec = body_spec(body_kind)
    v = {
        "name": name,
        "secrets": [SECRETS[s] for s in secrets],
        "body": spec,
        "headers": [["Host", "hooks.example"], ["Content-Type", "application/json"]] + headers,
        "now": now,
        "expect": expect,
    }
    if expect == "ok":
        v["key_index"] = key_index
    return v


def vectors():
    out = []
    body = lambda kind: body_spec(kind)[0]
    # Every body, digest spelling and signature spelling, with each secret.
    for kind in ["empty", "one-byte", "binary", "non-ascii", "1k", "64k", "1m"]:
        for digest in ["SHA-256", "sha-256", "sha-512", "sha-256+sha-512"]:
            for form in ["plain", "bytes"]:
                for sname in ["article", "unicode"]:
                    out.append(vector(f"{kind} {digest} {form} {sname}", kind,
                                      signed(body(kind), SECRETS[sname], digest=digest, sig_form=form),
                                      secrets=(sname,)))
    b = body("1k")
    ok = signed(b, SECRETS["article"])
    # Rotation: any configured secret verifies; the index says which.
    out.append(vector("rotation new secret first", "1k", signed(b, SECRETS["api"]),
                      secrets=("api", "article"), key_index=0))
    out.append(vector("rotation old secret second", "1k", signed(b, SECRETS["article"]),
                      secrets=("api", "unicode", "article"), key_index=2))
    out.append(vector("header names in other cases", "1k",
                      signed(b, SECRETS["article"], names=("content-digest", "SIGNATURE-INPUT", "sIgNaTuRe"))))
    out.append(vector("no alg parameter", "1k", signed(b, SECRETS["article"], params=f";created={CREATED}")))
    out.append(vector("alg as a string", "1k",
                      signed(b, SECRETS["article"], params=f';alg="hmac-sha256";created={CREATED}')))
    out.append(vector("other label", "1k", signed(b, SECRETS["article"], label="sig1"), expect="unknown_label"))
    # Failures.
    out.append(vector("wrong secret", "1k", signed(b, SECRETS["api"]), expect="signature_mismatch"))
    other = body("one-byte")
    out.append(vector("headers of another body", "1k", signed(other, SECRETS["article"]), expect="digest_mismatch"))
    forged = [[ok[0][0], content_digest(body("empty"), "SHA-256")], ok[1], ok[2]]
    out.append(vector("digest swapped, signature kept", "empty", forged, expect="signature_mismatch"))
    out.append(vector("at the edge of the past", "1k", ok, now=CREATED + 300))
    out.append(vector("stale", "1k", ok, now=CREATED + 301, expect="stale"))
    out.append(vector("at the edge of the future", "1k", ok, now=CREATED - 30))
    out.append(vector("future", "1k", ok, now=CREATED - 31, expect="future"))
    out.append(vector("expired", "1k",
                      signed(b, SECRETS["article"], params=f";alg=hmac-sha256;created={CREATED};expires={CREATED + 5}"),
                      now=CREATED + 36, expect="expired"))
    out.append(vector("not yet expired", "1k",
                      signed(b, SECRETS["article"], params=f";alg=hmac-sha256;created={CREATED};expires={CREATED + 5}"),
                      now=CREATED + 35))
    out.append(vector("body one byte over 1 MiB", "1m+1", signed(body("1m+1"), SECRETS["article"]),
                      expect="body_too_large"))
    return out


def main():
    text = json.dumps({"generator": "tests/vectors/gen_up42.py", "vectors": vectors()}, indent=1,
                      ensure_ascii=True)
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
