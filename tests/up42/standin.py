#!/usr/bin/env python3
"""A stand-in for UP42's webhook API and its authentication server, for tests/up42/ only.

It answers the requests `up42wh up42` makes, as UP42's documentation describes them (docs/up42.md
cites the source of each): the token endpoint (password grant, client up42-api), the user info
(`sub` is the workspace), GET /webhooks/events, the workspace's webhooks (list, create, read,
replace, delete) and their tests, which sign a test event exactly as UP42 signs its deliveries and
POST it to the webhook's URL, then report the answer as the API page shows it.

It refuses what UP42 would: a missing or unknown bearer token, an expired one, a non-https URL,
missing fields, unknown events, an unknown workspace or webhook. Its authentication server behaves
as Keycloak 20 and later do: an unknown client is 401 invalid_client; tokens are JWTs whose `scope`
holds `openid` only when the token request asked for it (else Keycloak's defaults, "profile
email"), and `userinfo` refuses a token without it (403 insufficient_scope, keycloak#16168).
Served over HTTPS on 127.0.0.1. Every request and every token it issues is appended to --log (JSON
lines), for the tests' checks.

For `up42wh up42 reconcile` it lists the workspace's orders (GET /v2/orders, sorted by updatedAt,
pages of 3; each order of --orders may have "updatedAt", "createdAt", "type") and processing jobs
(GET /v2/processing/jobs, sorted by created, pages of 2 linked by `rel: next`).

It also answers the calls of `up42wh up42 download`: GET /v2/orders/{id}, GET /v2/assets (search
matches loosely, by order id or name, as UP42's does, and pages hold at most 2 assets), POST
/v2/assets/{id}/download-url, whose URL leads to a second HTTPS port standing for Google Cloud
Storage: a signed URL (valid --url-life seconds, then 400 ExpiredToken), refused with any
Authorization header, answering Range with 206 and every answer with `x-goog-hash` of the whole
object. The orders come from --orders (JSON, read at each request, so a test may change an order's
status): {"ORDER_ID": {"status": "...", "assets": [{"id", "name", "size", "path", "hash"}]}}, where
"hash" is the x-goog-hash value and "path" the file served.

    standin.py --port P --cert C --key K --ca CA --log FILE [--token-life S]
                [--storage-port P2 --orders FILE2 [--url-life S]]
Account: STANDIN_USERNAME, STANDIN_PASSWORD; workspace STANDIN_WORKSPACE (the user's id: the
tokens' `sub`). Faults the tests ask for, each a file beside FILE while it exists:
  FILE.fail         "STATUS [RETRY_AFTER]": every API call and the user info answer that status;
  FILE.auth-fail    "STATUS [RETRY_AFTER [COUNT]]": the token endpoint and the user info answer that
                    status (COUNT times, then the file is removed);
  FILE.userinfo     "STATUS": the user info refuses every token with that status;
  FILE.html         "METHOD": API calls of that method answer 200 with a proxy's HTML page;
  FILE.opaque       a test's report is a shape the program does not know;
  FILE.list-busy    "COUNT [RETRY_AFTER]": the orders and jobs lists answer 429 COUNT times;
  FILE.jobs-busy    the same for the jobs list only;
  FILE.orders-shift "ORDER_ID STATUS": once the first page of orders is served, that order takes
                    that status (updated now), moving to the front of the list;
  FILE.jobs         not a fault: the processing jobs, {"JOB_ID": {"status", "created", "updated"}};
  FILE.storage      lines "KIND [ARG] [COUNT]", storage faults taken in order, the first line for
                    the next COUNT answers (or all of them):
                    "status CODE [RETRY_AFTER]", "cut BYTES" (the body stops after BYTES of its
                    bytes, the connection closed), "corrupt" (one byte in the middle flipped),
                    "short" (the object less its last byte, Content-Length saying so), "slow
                    BYTES_PER_S", "expired" (the URL is refused as expired).
"""
import argparse
import base64
import re
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
tokens = {}  # token -> (expiry in unix seconds, scope)
webhooks = {}  # id -> webhook
args = None


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log(entry):
    with lock, open(args.log, "a") as f:
        f.write(json.dumps(entry) + "\n")


def b64(data):
    return base64.b64encode(data).decode()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fault(name):
    """The words of the fault file FILE.name, or None."""
    try:
        with open(args.log + "." + name) as f:
            return f.read().split()
    except OSError:
        return None


def auth_fault():
    """FILE.auth-fail's status and Retry-After, counted down; None when there is none."""
    with lock:
        words = fault("auth-fail")
        if not words:
            return None
        if len(words) > 2:
            left = int(words[2]) - 1
            path = args.log + ".auth-fail"
            if left <= 0:
                os.remove(path)
            else:
                with open(path, "w") as f:
                    f.write(f"{words[0]} {words[1]} {left}")
        return words[:2]


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


def deliver(hook, event, body=None):
    """One request (a test's unless `body` is given), reported as the API page shows it."""
    body = body or test_body(event)
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


def orders():
    try:
        with open(args.orders) as f:
            return json.load(f)
    except (OSError, TypeError, ValueError):
        return {}


def jobs():
    """The processing jobs: FILE.jobs beside the log, {"JOB_ID": {"status", "created", "updated"}}."""
    try:
        with open(args.log + ".jobs") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def change_order(oid, status):
    with lock:
        o = orders()
        o[oid]["status"] = status
        o[oid]["updatedAt"] = now_rfc3339()
        with open(args.orders, "w") as f:
            json.dump(o, f)


def counted_fault(name):
    """FILE.name's words "COUNT [RETRY_AFTER]", counted down (removed at 0); None when none."""
    with lock:
        words = fault(name)
        if not words:
            return None
        left = int(words[0]) - 1
        if left <= 0:
            os.remove(args.log + "." + name)
        else:
            with open(args.log + "." + name, "w") as f:
                f.write(" ".join([str(left)] + words[1:]))
        return words


def all_assets():
    return [dict(a, orderId=oid) for oid, o in orders().items() for a in o.get("assets", [])]


def url_signature(path, date, expires):
    return hmac.new(STORAGE_KEY, f"{path}\n{date}\n{expires}".encode(), hashlib.sha256).hexdigest()


STORAGE_KEY = os.urandom(32)


def storage_faults():
    """The fault for this answer: the first line of FILE.storage, counted down ({} when none)."""
    path = args.log + ".storage"
    with lock:
        try:
            with open(path) as f:
                lines = [l.split() for l in f if l.strip()]
        except OSError:
            return {}
        if not lines:
            return {}
        words = lines[0]
        n = {"status": 2, "cut": 1, "corrupt": 0, "short": 0, "slow": 1, "expired": 0}.get(words[0], 0)
        if len(words) > 1 + n:
            # A count (for "status CODE", after its Retry-After).
            left = int(words[1 + n]) - 1
            lines[0] = words[:1 + n] + [str(left)] if left > 0 else None
        with open(path, "w") as f:
            f.write("".join(" ".join(w) + "\n" for w in lines if w))
        return {words[0]: words[1:1 + n]}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A response's head and body go out as written: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the head (40 ms a request), which no real server adds.
    disable_nagle_algorithm = True

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
            exp, _ = tokens.get(token, (0, ""))
        return token if exp > time.time() else None

    def scope(self, token):
        with lock:
            return tokens.get(token, (0, ""))[1].split()

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
        if path in (TOKEN_PATH, USERINFO_PATH):
            busy = auth_fault()
            if busy:
                headers = {"Retry-After": busy[1]} if len(busy) > 1 else None
                return self.send(int(busy[0]), {"error": "temporarily_unavailable"}, headers)
        if method == "POST" and path == TOKEN_PATH:
            return self.token(raw)
        if method == "POST" and path.startswith("/_standin/notify/"):
            # Not UP42's API: the tests' way to have UP42 notify an order's (or a job's) status now,
            # as it does when the status changes (once, to every active webhook for its event).
            oid = path.rsplit("/", 1)[1]
            o, j = orders().get(oid), jobs().get(oid)
            if o is not None:
                event = "order.status"
                inner = {"orderId": oid, "orderType": o.get("type", "ARCHIVE"), "dataHostName": "oneatlas",
                         "status": o["status"], "statusIsFinal": o["status"] == "FULFILLED"}
            elif j is not None:
                event = "job.status"
                inner = {"jobId": oid, "status": j["status"].upper(), "startedAt": j.get("started"),
                         "finishedAt": j.get("finished")}
            else:
                return self.send(404, {"error": "no such order or job"})
            body = {"event": event, "liveMode": True, "messageId": str(uuid.uuid4()),
                    "timestamp": now_rfc3339(), "body": inner}
            sent = [deliver(h, event, body) for h in list(webhooks.values())
                    if h.get("active") and event in h["events"]]
            return self.send(200, {"sent": sent})
        if method == "POST" and path == "/elsewhere":
            # Another server that answers 200 to anything: a URL that leads somewhere else.
            return self.send(200, {})
        # A failure the test asks for (the file --log + ".fail": "STATUS [RETRY_AFTER]"), for
        # every API call but the token's.
        fail = fault("fail")
        if fail:
            headers = {"Retry-After": fail[1]} if len(fail) > 1 else None
            return self.send(int(fail[0]), {"data": None, "error": {"code": int(fail[0]), "message": "the test asked for this failure"}}, headers)
        if self.bearer() is None:
            return self.send(401, {"error": "invalid_token", "error_description": "Token is not active"})
        if method == "GET" and path == USERINFO_PATH:
            refused = fault("userinfo")
            if refused:
                return self.send(int(refused[0]), {"error": "access_denied", "error_description": "the test asked for this"})
            if "openid" not in self.scope(self.bearer()):
                # Keycloak 20 and later: userinfo is for OpenID Connect tokens only.
                return self.send(403, {"error": "insufficient_scope", "error_description": "Missing openid scope"},
                                 {"WWW-Authenticate": 'Bearer realm="public", error="insufficient_scope", '
                                                      'error_description="Missing openid scope"'})
            return self.send(200, {"sub": os.environ["STANDIN_WORKSPACE"], "email_verified": True})
        if method in (fault("html") or []):
            # A proxy in the way that answers every call with its own page.
            page = b"<html><head><title>Sign in to the network</title></head><body>...</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            return self.wfile.write(page)
        if method == "GET" and path == "/webhooks/events":
            return self.send(200, {"data": EVENTS, "error": None})
        if path.startswith("/v2/"):
            return self.v2(method, path, raw)
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

    def v2_error(self, status, title, detail):
        self.send(status, {"status": status, "title": title, "detail": detail})

    def v2(self, method, path, raw):
        """Orders and assets, as UP42's v2 API answers them (no data envelope)."""
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 3 and parts[1] == "orders":
            o = orders().get(parts[2])
            if o is None:
                return self.v2_error(404, "Not Found", f"order {parts[2]} not found")
            return self.send(200, {"id": parts[2], "type": "ARCHIVE", "status": o["status"],
                                   "workspaceId": os.environ["STANDIN_WORKSPACE"]})
        if method == "GET" and path in ("/v2/orders", "/v2/processing/jobs"):
            q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            one = lambda k, d="": (q.get(k) or [d])[0]
            if one("workspaceId") != os.environ["STANDIN_WORKSPACE"]:
                return self.v2_error(403, "Forbidden", f"no access to workspace {one('workspaceId')}")
            busy = counted_fault("list-busy") or (path == "/v2/processing/jobs" and counted_fault("jobs-busy"))
            if busy:
                headers = {"Retry-After": busy[1]} if len(busy) > 1 else None
                return self.send(429, {"status": 429, "title": "Too Many Requests"}, headers)
            return self.orders_list(one) if path == "/v2/orders" else self.jobs_list(one)
        if method == "GET" and path == "/v2/assets":
            q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            search = (q.get("search") or [""])[0]
            page, size = int((q.get("page") or ["0"])[0]), min(int((q.get("size") or ["10"])[0]), 2)
            found = [a for a in all_assets() if search in a["orderId"] or search in a["name"]]
            content = [{"id": a["id"], "orderId": a["orderId"], "name": a["name"], "size": a.get("size"),
                        "contentType": "application/zip", "workspaceId": os.environ["STANDIN_WORKSPACE"]}
                       for a in found[page * size:(page + 1) * size]]
            return self.send(200, {"content": content, "totalPages": max(1, -(-len(found) // size)),
                                   "totalElements": len(found), "number": page, "size": size})
        if method == "POST" and len(parts) == 4 and parts[1] == "assets" and parts[3] == "download-url":
            a = next((a for a in all_assets() if a["id"] == parts[2]), None)
            if a is None:
                return self.v2_error(404, "Not Found", f"asset {parts[2]} not found")
            obj = f"/up42-storage/{a['id']}/{urllib.parse.quote(a['name'])}"
            date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            expires = str(args.url_life)
            query = urllib.parse.urlencode({
                "X-Goog-Algorithm": "GOOG4-RSA-SHA256", "X-Goog-Credential": "standin/auto/storage/goog4_request",
                "X-Goog-Date": date, "X-Goog-Expires": expires, "X-Goog-SignedHeaders": "host",
                "X-Goog-Signature": url_signature(obj, date, expires)})
            url = f"https://127.0.0.1:{args.storage_port}{obj}?{query}"
            log({"download_url": a["id"]})
            return self.send(200, {"url": url})
        return self.v2_error(404, "Not Found", f"no such resource: {path}")

    def orders_list(self, one):
        """GET /v2/orders: the newest updated first, pages of at most 3 (to be paged)."""
        if one("sort") != "updatedAt,desc":
            return self.v2_error(400, "Bad Request", f"sort {one('sort')!r} is not what the test expects")
        page, size = int(one("page", "0")), min(int(one("size", "10")), 3)
        listed = sorted(orders().items(), key=lambda kv: kv[1].get("updatedAt", ""), reverse=True)
        content = [{"id": oid, "workspaceId": os.environ["STANDIN_WORKSPACE"], "displayName": o.get("displayName", oid[:8]),
                    "type": o.get("type", "ARCHIVE"), "status": o["status"], "createdAt": o.get("createdAt"),
                    "updatedAt": o.get("updatedAt")} for oid, o in listed[page * size:(page + 1) * size]]
        shift = fault("orders-shift")
        if shift and page == 0:
            # Another order changes while the pages are read: it moves to the front, and every
            # order behind it one place back.
            os.remove(args.log + ".orders-shift")
            change_order(shift[0], shift[1])
        return self.send(200, {"content": content, "totalPages": max(1, -(-len(listed) // size)),
                               "totalElements": len(listed), "number": page, "size": size})

    def jobs_list(self, one):
        """GET /v2/processing/jobs: the newest created first, pages of at most 2 linked by rel next."""
        if one("sort") != "created,desc":
            return self.v2_error(400, "Bad Request", f"sort {one('sort')!r} is not what the test expects")
        start, limit = int(one("page", "0")), min(int(one("limit", "10")), 2)
        listed = sorted(jobs().items(), key=lambda kv: kv[1].get("created", ""), reverse=True)
        page = [{"jobID": jid, "processID": j.get("processID", "upsampling"), "workspaceID": os.environ["STANDIN_WORKSPACE"],
                 "accountID": "standin", "status": j["status"], "created": j.get("created"), "updated": j.get("updated"),
                 "started": j.get("started"), "finished": j.get("finished"), "definition": {}, "results": None}
                for jid, j in listed[start:start + limit]]
        links = [{"rel": "self", "href": self.path}]
        if start + limit < len(listed):
            links.append({"rel": "next", "href": f"/v2/processing/jobs?workspaceId={one('workspaceId')}"
                                                 f"&sort=created,desc&limit={limit}&page={start + limit}"})
        return self.send(200, {"jobs": page, "links": links})

    def token(self, raw):
        form = urllib.parse.parse_qs(raw.decode())
        one = lambda k: (form.get(k) or [""])[0]
        if one("client_id") not in ("up42-api", "up42-sdk"):
            return self.send(401, {"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"})
        if one("grant_type") != "password":
            return self.send(400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"})
        if one("username") != os.environ["STANDIN_USERNAME"] or one("password") != os.environ["STANDIN_PASSWORD"]:
            return self.send(401, {"error": "invalid_grant", "error_description": "Invalid user credentials"})
        # Keycloak's default client scopes, and openid when asked for (an unknown scope is refused).
        asked = one("scope").split()
        if any(s not in ("openid", "profile", "email") for s in asked):
            return self.send(400, {"error": "invalid_scope", "error_description": "Invalid scopes: " + one("scope")})
        scope = " ".join((["openid"] if "openid" in asked else []) + ["profile", "email"])
        issued = int(time.time())
        claims = {"exp": issued + args.token_life, "iat": issued, "jti": str(uuid.uuid4()),
                  "iss": f"https://127.0.0.1:{args.port}/realms/public", "sub": os.environ["STANDIN_WORKSPACE"],
                  "typ": "Bearer", "azp": one("client_id"), "scope": scope}
        token = ".".join([b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "standin"}).encode()),
                          b64url(json.dumps(claims).encode()), b64url(os.urandom(64))])
        with lock:
            tokens[token] = (time.time() + args.token_life, scope)
        log({"issued": token, "scope": scope})
        answer = {"access_token": token, "expires_in": args.token_life, "token_type": "Bearer", "scope": scope}
        if "openid" in asked:
            answer["id_token"] = token.split(".")[0] + "." + b64url(json.dumps(claims).encode()) + ".c2ln"
        return self.send(200, answer)

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


class Storage(http.server.BaseHTTPRequestHandler):
    """Google Cloud Storage as a signed URL meets it."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def xml_error(self, status, code, message, headers=None):
        body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error>").encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
        entry = {"storage": u.path, "range": self.headers.get("Range"),
                 "authorization": self.headers.get("Authorization") is not None}
        faults = storage_faults()
        if self.headers.get("Authorization") is not None:
            log(dict(entry, answered=400))
            return self.xml_error(400, "InvalidArgument", "Invalid argument: a signed URL takes no Authorization header.")
        date, expires = q.get("X-Goog-Date", ""), q.get("X-Goog-Expires", "")
        if not hmac.compare_digest(q.get("X-Goog-Signature", ""), url_signature(u.path, date, expires)):
            log(dict(entry, answered=403))
            return self.xml_error(403, "SignatureDoesNotMatch", "Access denied.")
        signed = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        if "expired" in faults or signed.timestamp() + int(expires) < time.time():
            log(dict(entry, answered=400))
            return self.xml_error(400, "ExpiredToken", "Invalid argument.")
        if "status" in faults:
            code = int(faults["status"][0])
            retry = faults["status"][1:2]
            log(dict(entry, answered=code))
            return self.xml_error(code, "ServiceUnavailable" if code >= 500 else "TooManyRequests",
                                  "the test asked for this", {"Retry-After": retry[0]} if retry else None)
        parts = u.path.split("/")
        a = next((a for a in all_assets() if len(parts) > 2 and a["id"] == parts[2]), None)
        if a is None:
            log(dict(entry, answered=404))
            return self.xml_error(404, "NoSuchKey", "The specified key does not exist.")
        size = os.path.getsize(a["path"])
        served = size - 1 if "short" in faults else size
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            if start >= served:
                log(dict(entry, answered=416))
                return self.xml_error(416, "InvalidRange", "The requested range cannot be satisfied.",
                                      {"Content-Range": f"bytes */{served}"})
        self.send_response(206 if m else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(served - start))
        if m:
            self.send_header("Content-Range", f"bytes {start}-{served - 1}/{served}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("x-goog-hash", a["hash"])
        self.send_header("x-goog-stored-content-length", str(size))
        self.end_headers()
        cut = int(faults["cut"][0]) if "cut" in faults else None
        rate = int(faults["slow"][0]) if "slow" in faults else None
        flip = size // 2 if "corrupt" in faults else None
        sent = 0
        with open(a["path"], "rb") as f:
            f.seek(start)
            pos = start
            while pos < served:
                n = min(64 * 1024, served - pos)
                if rate:
                    n = min(n, max(1, rate // 10))
                if cut is not None:
                    n = min(n, cut - sent)
                    if n <= 0:
                        break
                chunk = bytearray(f.read(n))
                if flip is not None and pos <= flip < pos + len(chunk):
                    chunk[flip - pos] ^= 0x01
                try:
                    self.wfile.write(chunk)
                except OSError:
                    break
                pos += len(chunk)
                sent += len(chunk)
                if rate:
                    time.sleep(len(chunk) / rate)
        log(dict(entry, answered=206 if m else 200, sent=sent))
        if cut is not None and sent >= cut:
            self.close_connection = True


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--token-life", type=int, default=300)
    p.add_argument("--storage-port", type=int)
    p.add_argument("--orders")
    p.add_argument("--url-life", type=int, default=300)
    args = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)]
    if args.storage_port:
        servers.append(http.server.ThreadingHTTPServer(("127.0.0.1", args.storage_port), Storage))
    for server in servers:
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
