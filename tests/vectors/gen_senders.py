#!/usr/bin/env python3
"""Reference signer for the senders other than UP42, independent of the Rust code.

Writes JSON on stdout (committed as senders.json; tests/abi/senders.rs reruns this script and compares):
- a UbiOps-style request: RFC 9421 with Ed25519, covering "@method" "@authority" "@target-uri"
  "content-digest" "date", label `pyhms`, keyid "sha512:" + hex SHA-512 of the raw public key, the
  signature as a byte sequence, as the UbiOps example's requests-http-signature library signs;
- RFC 9421 HMAC-SHA256 requests covering query parameters and a structured field;
- Standard Webhooks `v1a` (Ed25519, `whpk_` key) deliveries, which its library vectors lack;
- Stripe deliveries (`Stripe-Signature: t=...,v1=...`).
Needs Python's `cryptography` for Ed25519 (Ed25519 signatures are deterministic, so reruns agree);
the rest is the standard library.
"""
import base64
import hashlib
import hmac
import json
import sys
from email.utils import formatdate

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CREATED = 1_705_392_742
# Fixed seeds: test keys only.
UBIOPS_SEED = bytes(range(32))
WHPK_SEED = bytes(range(32, 64))


def b64(data):
    return base64.b64encode(data).decode()


def ed25519(seed):
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return key, public, pem


def sf_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rfc9421_request(name, method, scheme, authority, target, fields, body, covered, params, sign,
                    label="sig", digest="sha-512"):
    """A request whose headers are `fields` plus Content-Digest, Signature-Input and Signature.
    `covered` is a list of (identifier as serialized, value); values of fields are looked up."""
    fields = list(fields)
    if digest:
        h = hashlib.sha512(body) if digest == "sha-512" else hashlib.sha256(body)
        fields.append(("Content-Digest", f"{digest}=:{b64(h.digest())}:"))
    lookup = {n.lower(): v for n, v in fields}
    derived = {
        '"@method"': method,
        '"@authority"': authority,
        '"@target-uri"': f"{scheme}://{authority}{target}",
        '"@path"': target.split("?")[0],
        '"@query"': "?" + (target.split("?", 1)[1] if "?" in target else ""),
        '"@scheme"': scheme,
        '"@request-target"': target,
    }
    lines = []
    for ident, value in covered:
        if value is None:
            value = derived.get(ident)
        if value is None:
            value = lookup[json.loads(ident)]
        lines.append(f"{ident}: {value}")
    inner = "(" + " ".join(ident for ident, _ in covered) + ")" + params
    lines.append(f'"@signature-params": {inner}')
    base = "\n".join(lines).encode()
    signature = sign(base)
    fields.append(("Signature-Input", f"{label}={inner}"))
    fields.append(("Signature", f"{label}=:{b64(signature)}:"))
    return {
        "name": name,
        "method": method,
        "scheme": scheme,
        "authority": authority,
        "target": target,
        "headers": fields,
        "body": body.decode(),
        "label": label,
        "base": base.decode(),
        "now": CREATED + 5,
    }


def main():
    key, public, pem = ed25519(UBIOPS_SEED)
    keyid = "sha512:" + hashlib.sha512(public).hexdigest()
    body = json.dumps({"event": "deployment_request_completed", "request_id": "9f1c",
                       "status": "completed", "text": "Deployment request 9f1c finished"}).encode()
    date = formatdate(CREATED, usegmt=True)
    components = ['"@method"', '"@authority"', '"@target-uri"', '"content-digest"', '"date"']
    ubiops = []
    for digest in ("sha-512", "sha-256"):
        ubiops.append(rfc9421_request(
            f"ubiops {digest}", "POST", "https", "hooks.example.com", "/receive-webhooks/ubiops",
            [("Host", "hooks.example.com"), ("Date", date), ("Content-Type", "application/json")],
            body, [(c, None) for c in components],
            f';created={CREATED};keyid="{keyid}";alg="ed25519"', key.sign, label="pyhms", digest=digest))

    secret = b"rfc9421-reference-hmac-secret"
    hmac_requests = [rfc9421_request(
        "hmac with query parameters and a dictionary member", "POST", "https", "example.com",
        "/hook?event=job&b=with+plus&fa%C3%A7ade=1",
        [("Host", "example.com"), ("Date", date), ("Example-Dict", "a=1,  b=2;x=?1")],
        body,
        [('"@method"', None), ('"@path"', None), ('"@query"', None),
         ('"@query-param";name="b"', "with%20plus"), ('"@query-param";name="fa%C3%A7ade"', "1"),
         ('"example-dict";key="b"', "2;x"), ('"example-dict";sf', "a=1, b=2;x"),
         ('"content-digest"', None)],
        f';created={CREATED};keyid="hmac-key";nonce="n-0001"',
        lambda base: hmac.new(secret, base, hashlib.sha256).digest())]

    wkey, wpublic, _ = ed25519(WHPK_SEED)
    wid, wts = "msg_2hZ6xC4dV1", str(CREATED)
    wbody = b'{"type":"invoice.paid","id":"in_1"}'
    v1a = wkey.sign(f"{wid}.{wts}.".encode() + wbody)
    standard = {
        "public_key": "whpk_" + b64(wpublic),
        "id": wid, "timestamp": wts, "payload": wbody.decode(),
        # Unknown versions are skipped; the matching one may come anywhere in the list.
        "signature": f"v2,{b64(b'x' * 32)} v1a,{b64(v1a)}",
        "now": CREATED + 5,
    }

    stripe_secret = "whsec_test_reference_endpoint_secret"
    sbody = b'{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}'
    st = CREATED
    sig = hmac.new(stripe_secret.encode(), f"{st}.".encode() + sbody, hashlib.sha256).hexdigest()
    old = hmac.new(b"whsec_previous_secret", f"{st}.".encode() + sbody, hashlib.sha256).hexdigest()
    stripe = {
        "secret": stripe_secret,
        "payload": sbody.decode(),
        "header": f"t={st},v1={old},v1={sig},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
        "now": CREATED + 5,
    }

    json.dump({
        "generator": "tests/vectors/gen_senders.py",
        "ubiops": {"public_key_pem": pem, "keyid": keyid, "requests": ubiops},
        "rfc9421_hmac": {"secret": secret.decode(), "keyid": "hmac-key", "requests": hmac_requests},
        "standard_webhooks_v1a": standard,
        "stripe": stripe,
    }, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
