#!/usr/bin/env python3
"""A stand-in for UP42's webhook API and its authentication server, for tests/up42/ only.

It answers the requests `up42wh up42` makes, as UP42's documentation describes them (docs/up42.md
cites the source of each): the token endpoint (password grant, client up42-api), the user info
(`sub` is the workspace), GET /webhooks/events, the workspace's webhooks (list, create, read,
replace, delete) and their tests, which sign a test event exactly as UP42 signs its deliveries and
POST it to the webhook's URL, then report the answer as the API page shows it.

It refuses what UP42 would: a missing or unknown bearer token, an expired one, a non-https URL,
missing fields, unknown events, an unknown workspace or webhook. Served over HTTPS on 127.0.0.1.
Every request and every token it issues is appended to --log (JSON lines), for the tests' checks.

    standin.py --port P --cert C --key K --ca CA --log FILE [--token-life S]
Account: STANDIN_USERNAME, STANDIN_PASSWORD; workspace STANDIN_WORKSPACE. A file FILE.fail holding
"STATUS [RETRY_AFTER]" makes every API call answer that status (429, 5xx) while it exists; a file
FILE.opaque makes a test's report a shape the program does not know.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

EVENTS = [
    {"name": "job.status", "title": "Job Status Updates", "category": "job",
     "description": "Sent when job/task status is updated", "documentation": "https://docs.up42.com/developers/"},
    {"name": "order.status", "title": "Order Status Updates", "category": "order",
     "description": "Sent when order status is updated", "documentation": "https://docs.up42.com/developers/"},
]
TOKEN_PATH = "/realms/public/protocol/openid-connect/token"
USERINFO_PATH = "/realms/public/protocol/openid-connect/userinfo"

lock = threading.Lock()
tokens = {}  # token -> expiry (unix seconds)
webhooks = {}  # id -> webhook
args = None


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log(entry):
    with lock, open(args.log, "a") as f:
        f.write(json.dumps(entry) + "\n")


def b64(data):
    return base64.b64encode(data).decode()


def signed_headers(body, secret):
    """UP42's scheme: the digest of the body, and an HMAC-SHA256 of it under the secret."""
    digest = f"SHA-256=:{b64(hashlib.sha256(body).digest())}:"
    tag = b64(hmac.new(secret.encode(), digest.encode(), hashlib.sha256).digest())
    return {
        "Content-Type": "application/json",
        "Content-Digest": digest,
        "Signature-Input": f'up42-sig=("content-digest");keyid="secret";alg=hmac-sha256;created={int(time.time())}',
        "Signature": f"up42-sig={tag}",
    }


def test_body(event):
    inner = ({"jobId": str(uuid.uuid4()).upper(), "status": "PENDING",
              "tasks": [{"id": str(uuid.uuid4()).upper(), "status": "NOT_STARTED", "startedAt": None,
                         "finishedAt": None}], "startedAt": now_rfc3339(), "finishedAt": None}
             if event == "job.status" else
             {"orderId": str(uuid.uuid4()), "orderType": "ARCHIVE", "dataHostName": "oneatlas",
              "status": "FULFILLED", "statusIsFinal": True})
    return {"event": event, "liveMode": False, "messageId": str(uuid.uuid4()), "timestamp": now_rfc3339(),
            "body": inner}


def deliver(hook, event):
    """One test request, reported as the API page shows it."""
    body = test_body(event)
    raw = json.dumps(body).encode()
    req = urllib.request.Request(hook["url"], data=raw, method="POST", headers=signed_headers(raw, hook.get("secret") or ""))
    ctx = ssl.create_default_context(cafile=args.ca)
    started = now_rfc3339()
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            code, reason = resp.status, resp.reason
    except urllib.error.HTTPError as e:
        code, reason = e.code, e.reason
    except Exception as e:  # the URL could not be reached
        return {"startedAt": started, "eventName": event, "success": False,
                "message": f"Test request failed: {e}", "request": {"body": body}, "response": None}
    ok = 200 <= code < 300
    return {"startedAt": started, "eventName": event, "success": ok,
            "message": "Test request was successful!" if ok else "Test request failed!",
            "request": {"headers": {"caseInsensitiveName": True, "empty": False}, "body": body},
            "response": f"HttpResponse[{hook['url']}, {code} {reason}]"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, payload=None, headers=None):
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        self.send(status, {"data": None, "error": {"code": status, "message": message, "details": None}})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def bearer(self):
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return None
        token = auth[len("Bearer "):]
        with lock:
            exp = tokens.get(token)
        return token if exp and exp > time.time() else None

    def record(self, body):
        log({"method": self.command, "path": self.path, "authorization": self.headers.get("Authorization"),
             "body": body.decode(errors="replace")})

    def do_POST(self):
        self.route("POST")

    def do_GET(self):
        self.route("GET")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        raw = self.body()
        self.record(raw)
        path = urllib.parse.urlparse(self.path).path
        if method == "POST" and path == TOKEN_PATH:
            return self.token(raw)
        if method == "POST" and path == "/elsewhere":
            # Another server that answers 200 to anything: a URL that leads somewhere else.
            return self.send(200, {})
        # A failure the test asks for (the file --log + ".fail": "STATUS [RETRY_AFTER]"), for
        # every API call but the token's.
        try:
            with open(args.log + ".fail") as f:
                fail = f.read().split()
        except OSError:
            fail = None
        if fail:
            headers = {"Retry-After": fail[1]} if len(fail) > 1 else None
            return self.send(int(fail[0]), {"data": None, "error": {"code": int(fail[0]), "message": "the test asked for this failure"}}, headers)
        if self.bearer() is None:
            return self.send(401, {"error": "invalid_token", "error_description": "Token is not active"})
        if method == "GET" and path == USERINFO_PATH:
            return self.send(200, {"sub": os.environ["STANDIN_WORKSPACE"], "email_verified": True})
        if method == "GET" and path == "/webhooks/events":
            return self.send(200, {"data": EVENTS, "error": None})
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "workspaces" or parts[2] != "webhooks":
            return self.error(404, f"no such resource: {path}")
        if parts[1] != os.environ["STANDIN_WORKSPACE"]:
            return self.error(404, f"workspace {parts[1]} not found")
        if len(parts) == 3:
            if method == "GET":
                return self.send(200, {"data": list(webhooks.values()), "error": None})
            if method == "POST":
                return self.save(None, raw)
        hook_id = parts[3]
        if hook_id not in webhooks:
            return self.error(404, f"webhook {hook_id} not found")
        if len(parts) == 4:
            if method == "GET":
                return self.send(200, {"data": webhooks[hook_id], "error": None})
            if method == "PUT":
                return self.save(hook_id, raw)
            if method == "DELETE":
                del webhooks[hook_id]
                return self.send(204)
        if len(parts) == 5 and parts[4] == "tests" and method == "POST":
            req = json.loads(raw or b"{}")
            hook = webhooks[hook_id]
            names = req.get("eventNames") or hook["events"]
            results = [deliver(hook, e) for e in names]
            passed = sum(1 for r in results if r["success"])
            if os.path.exists(args.log + ".opaque"):
                # A report in a shape the program does not know (the API page shows only one).
                return self.send(200, {"data": {"outcome": "see the console"}, "error": None})
            return self.send(200, {"data": {"startedAt": now_rfc3339(), "testsRun": len(results),
                                            "testsSucceeded": passed, "testsFailed": len(results) - passed,
                                            "tests": results}, "error": None})
        return self.error(405, f"{method} {path} is not allowed")

    def token(self, raw):
        form = urllib.parse.parse_qs(raw.decode())
        one = lambda k: (form.get(k) or [""])[0]
        if one("grant_type") != "password" or one("client_id") != "up42-api":
            return self.send(400, {"error": "unsupported_grant_type", "error_description": "password grant for up42-api"})
        if one("username") != os.environ["STANDIN_USERNAME"] or one("password") != os.environ["STANDIN_PASSWORD"]:
            return self.send(401, {"error": "invalid_grant", "error_description": "Invalid user credentials"})
        token = "standin-" + uuid.uuid4().hex + uuid.uuid4().hex
        with lock:
            tokens[token] = time.time() + args.token_life
        log({"issued": token})
        return self.send(200, {"access_token": token, "expires_in": args.token_life, "token_type": "Bearer"})

    def save(self, hook_id, raw):
        try:
            req = json.loads(raw)
        except ValueError:
            return self.error(400, "the body is not JSON")
        for field in ("events", "name", "url"):
            if not req.get(field):
                return self.error(400, f"{field} is required")
        if not str(req["url"]).startswith("https://"):
            return self.error(400, "url must be an https URL")
        known = {e["name"] for e in EVENTS}
        if not isinstance(req["events"], list) or any(e not in known for e in req["events"]):
            return self.error(400, f"events must be a list of {sorted(known)}")
        now = now_rfc3339()
        hook = webhooks.get(hook_id) or {"id": str(uuid.uuid4()), "createdAt": now}
        hook.update({"url": req["url"], "name": req["name"], "events": req["events"],
                     "active": bool(req.get("active", False)), "secret": req.get("secret"), "updatedAt": now})
        webhooks[hook["id"]] = hook
        return self.send(200 if hook_id else 201, {"data": hook, "error": None})


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--token-life", type=int, default=300)
    args = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
