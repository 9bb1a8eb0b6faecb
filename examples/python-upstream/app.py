#!/usr/bin/env python3
"""A small legacy-style app behind koogate, implementing the upstream contract (docs/upstream-contract.md).

Python 3.11, standard library only. State lives in memory, so this is an example, not a product: a real app keeps
instances in a database and makes the newInstance check-and-create atomic there.

    python3 examples/python-upstream/app.py --port 3000

prints `listening on 127.0.0.1:<port>` once ready (`--port 0` picks a free port) and serves:

    POST <any path>   the normalised JSON koogate sends (contract version 1, generations v1 and v2)
    GET  /healthz     200 "ok"

Initial passwords are derived from the instance id and the APP_SECRET environment variable (set it outside a demo).

When KOOGATE_UPSTREAM_SECRET (or KOOGATE_UPSTREAM_SECRET_FILE, a file holding it) is set — the same secret as
koogate's `upstream.signature_key_env`/`signature_key_file` — every POST must carry koogate's signature
(X-Koogate-Timestamp, X-Koogate-Signature; docs/upstream-contract.md section 2), else it is answered HTTP 401 and
not processed: only koogate, which verified KooGallery's call, can then reach the app.

One short log line per request goes to stderr. Buyer phone numbers, e-mail addresses and generated passwords are
never logged.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Largest request body read; koogate itself accepts at most 64 KiB from KooGallery.
MAX_BODY_BYTES = 1 << 20
# koogate's signature must be at most this old (or this far ahead): clock skew between two hosts plus the deadline.
MAX_SIGNATURE_AGE_MS = 300_000

# Result codes (docs/upstream-contract.md section 5).
INVALID_PARAMETERS = "000002"
INSTANCE_NOT_FOUND = "000003"

# Activities that act on one existing instance; an unknown `instanceId` is answered 000003 (except test calls).
INSTANCE_ACTIVITIES = {
    "refreshInstance",
    "updateInstanceStatus",
    "expireInstance",
    "releaseInstance",
    "upgradeInstance",
}


class BadRequest(Exception):
    """The call cannot be understood: answered 000002."""


def upstream_secret() -> bytes | None:
    """The secret koogate signs requests with, from the environment or a file; None when not configured."""
    value = os.environ.get("KOOGATE_UPSTREAM_SECRET")
    path = os.environ.get("KOOGATE_UPSTREAM_SECRET_FILE")
    if value is None and path:
        with open(path, encoding="utf-8") as f:
            value = f.read().rstrip("\r\n")
    return value.encode() if value else None


def koogate_signature_ok(secret: bytes, timestamp: str, signature: str, body: bytes, now_ms: int) -> bool:
    """koogate's check: HMAC-SHA256(secret, timestamp + "." + body) in hex, timestamp (Unix ms) recent."""
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now_ms - int(timestamp)) > MAX_SIGNATURE_AGE_MS:
        return False
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class Store:
    """Instances in memory, keyed by instance id. Every method holds the lock for its whole check-and-update."""

    def __init__(self, base_url: str, secret: bytes) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.lock = threading.Lock()
        self.instances: dict[str, dict] = {}
        self.order_notifications: dict[str, dict] = {}

    # --- derived, deterministic values -------------------------------------------------------------------------

    @staticmethod
    def instance_id_for(order_id: str, order_line_id: str | None) -> str:
        """The same order always gets the same id, so KooGallery's retries (and V1's "resource details"
        re-calls) are idempotent by construction. At most 64 ASCII characters, as KooGallery requires."""
        key = order_id if order_line_id is None else f"{order_id}\n{order_line_id}"
        return "py-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]

    def app_info(self, instance_id: str) -> dict:
        if instance_id.startswith("py-"):
            short = instance_id[3:9]
        else:  # an id this app did not make (e.g. a console test id): a short, stable, ASCII stand-in
            short = hashlib.sha256(instance_id.encode()).hexdigest()[:6]
        # Deterministic per instance (HMAC of the id under the app's secret): a repeated newInstance or a
        # queryInstance shows the same initial password. 20 characters, well under koogate's limit (the value
        # must stay short enough to fit KooGallery's 128 characters once encrypted).
        password = "Pw-" + hmac.new(self.secret, instance_id.encode(), hashlib.sha256).hexdigest()[:17]
        front = f"{self.base_url}/t/{instance_id}/"
        return {
            "frontEndUrl": front,
            "adminUrl": front + "admin",
            "userName": f"admin-{short}",
            "password": password,
            "memo": "Sign in with the account name and initial password; change the password on first sign-in.",
        }

    def query_entry(self, instance_id: str) -> dict:
        front = f"{self.base_url}/t/{instance_id}/"
        return {
            "instanceId": instance_id,
            "appInfo": self.app_info(instance_id),
            "usageInfo": [
                {
                    "usageValue": "1",
                    "statisticalTime": datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S"),
                    "relatedInstanceId": instance_id,
                    "dashboardUrl": front + "usage",
                }
            ],
        }

    # --- activities ---------------------------------------------------------------------------------------------

    def new_instance(self, call: dict) -> dict:
        order_id = required_str(call, "orderId")
        order_line_id = optional_str(call, "orderLineId")
        instance_id = self.instance_id_for(order_id, order_line_id)
        with self.lock:
            if instance_id not in self.instances:
                # Provision once. A testFlag call is recorded (so the console's follow-up calls find it) but marked
                # as a test: a real app must not create billable resources for it.
                buyer = call.get("buyer") if isinstance(call.get("buyer"), dict) else {}
                self.instances[instance_id] = {
                    "test": call.get("testFlag") is True,
                    "generation": call.get("generation"),
                    "orderId": order_id,
                    "orderLineId": order_line_id,
                    "productId": call.get("productId"),
                    "skuCode": call.get("skuCode"),
                    "chargingMode": call.get("chargingMode"),
                    "trial": call.get("trialFlag") is True,
                    "expireTime": call.get("expireTime"),
                    "extendParams": call.get("extendParams", []),
                    "orders": call.get("orders", []),
                    # Plain text: koogate decrypted them. Stored, never logged.
                    "buyerEmail": buyer.get("email"),
                    "buyerPhone": buyer.get("mobilePhone"),
                    "customerId": buyer.get("customerId"),
                    "status": "active",
                    "created": time.time(),
                }
        return {"instanceId": instance_id, "appInfo": self.app_info(instance_id)}

    def query_instance(self, call: dict) -> dict:
        ids = call.get("instanceIds")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise BadRequest("instanceIds")
        test = call.get("testFlag") is True
        with self.lock:
            # A test call (console debugger, twice-daily probes) must not fail because this in-memory app was
            # restarted since the instance was created: it gets the same deterministic details.
            known = [i for i in ids if test or i in self.instances]
        if not known:
            return {"resultCode": INSTANCE_NOT_FOUND}
        return {"info": [self.query_entry(i) for i in known]}

    def instance_activity(self, activity: str, call: dict) -> dict:
        instance_id = required_str(call, "instanceId")
        status = None
        if activity == "updateInstanceStatus":
            status = call.get("status")
            if status not in ("FREEZE", "UNFREEZE"):
                raise BadRequest("status")
        with self.lock:
            inst = self.instances.get(instance_id)
            if inst is None:
                # Test calls succeed on unknown instances; nothing to do.
                return {} if call.get("testFlag") is True else {"resultCode": INSTANCE_NOT_FOUND}
            # Every branch is a plain assignment, so a repeated call has the same effect as the first one.
            if activity == "refreshInstance":
                if call.get("expireTime"):
                    inst["expireTime"] = call["expireTime"]  # RFC 3339 UTC
                if call.get("scene") == "TRIAL_TO_FORMAL" or call.get("trialToFormal") is True:
                    inst["trial"] = False
                if inst["status"] == "expired":
                    inst["status"] = "active"  # renewed after expiry
            elif activity == "updateInstanceStatus":
                inst["status"] = "frozen" if status == "FREEZE" else "active"
            elif activity == "expireInstance":
                # V1: the subscription expired. Stop the instance like a FREEZE, keep its data until release.
                inst["status"] = "expired"
            elif activity == "releaseInstance":
                inst["status"] = "released"  # keep the record: a repeated release still succeeds
            elif activity == "upgradeInstance":
                for field in ("orderId", "orderLineId", "productId", "skuCode", "amount", "diskSize", "bandWidth"):
                    if field in call:
                        inst[field] = call[field]
                if "extendParams" in call:
                    inst["extendParams"] = call["extendParams"]
        return {}

    def order_notify(self, call: dict) -> dict:
        order_id = required_str(call, "orderId")
        instance_id = optional_str(call, "instanceId")
        with self.lock:
            if instance_id is not None and instance_id not in self.instances and call.get("testFlag") is not True:
                return {"resultCode": INSTANCE_NOT_FOUND}
            self.order_notifications[f"{order_id}\n{optional_str(call, 'orderLineId') or ''}"] = {
                "instanceId": instance_id,
                "test": call.get("testFlag") is True,
                "received": time.time(),
            }
        return {}

    def handle(self, call: dict) -> dict:
        activity = call.get("activity")
        if not isinstance(activity, str):
            raise BadRequest("activity")
        if activity == "newInstance":
            return self.new_instance(call)
        if activity == "queryInstance":
            return self.query_instance(call)
        if activity in INSTANCE_ACTIVITIES:
            return self.instance_activity(activity, call)
        if activity == "orderNotify":
            return self.order_notify(call)
        # An activity added by a later contract version: nothing to do here (the contract is additive).
        return {}


def required_str(call: dict, name: str) -> str:
    value = call.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(name)
    return value


def optional_str(call: dict, name: str) -> str | None:
    value = call.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(name)
    return value or None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: koogate pools its upstream connections
    # Headers and body leave in two writes; on a keep-alive connection Nagle's algorithm holds the second until the
    # first is acknowledged, and the peer delays that ACK by ~40 ms. TCP_NODELAY sends both at once.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections close after this; longer than koogate's 4 s pool idle timeout
    server_version = "python-upstream/1"
    store: Store  # set in main()
    # With --debug-last-call: the last call koogate sent, served on GET /debug/last-call (loopback, for tests and
    # for seeing what koogate sends; it contains decrypted buyer data, so never enable it in production).
    debug_last_call: bool = False
    last_call: dict | None = None
    # koogate's upstream secret: when set, unsigned or badly signed POSTs get HTTP 401.
    upstream_secret: bytes | None = None

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/debug/last-call" and self.debug_last_call:
            self.reply(200, json.dumps(Handler.last_call).encode(), "application/json")
            return
        status = 200 if path == "/healthz" else 404
        self.reply(status, b"ok" if status == 200 else b"not found", "text/plain; charset=utf-8")
        self.log_line(f"GET {path[:64]} -> {status}")

    def do_POST(self) -> None:
        started = time.monotonic()
        request_id = self.headers.get("x-request-id", "-")
        activity, detail = self.headers.get("x-koogate-activity", "-"), ""
        try:
            body = self.read_body()
            if self.upstream_secret is not None and not koogate_signature_ok(
                self.upstream_secret,
                self.headers.get("X-Koogate-Timestamp", ""),
                self.headers.get("X-Koogate-Signature", ""),
                body,
                int(time.time() * 1000),
            ):
                self.reply(401, b'{"error":"missing or invalid koogate signature"}', "application/json")
                self.log_line(f"{request_id} refused: missing or invalid koogate signature")
                return
            try:
                call = json.loads(body)
            except json.JSONDecodeError:
                raise BadRequest("body is not JSON") from None
            if not isinstance(call, dict):
                raise BadRequest("body is not an object")
            Handler.last_call = call
            activity = str(call.get("activity", activity))
            detail = describe(call)
            answer = self.store.handle(call)
        except (BadRequest, ValueError) as err:
            # ValueError also covers a body that is not UTF-8 and a bad Content-Length or chunk size.
            answer = {"resultCode": INVALID_PARAMETERS, "resultMsg": f"invalid request: {err}"[:200]}
        except Exception as err:  # noqa: BLE001 - any other failure is a temporary internal error
            answer = {"resultCode": "000005"}
            self.log_line(f"request {request_id} failed: {type(err).__name__}")
        body = json.dumps(answer, separators=(",", ":")).encode()
        self.reply(200, body, "application/json")
        took = (time.monotonic() - started) * 1000
        code = answer.get("resultCode", "000000")
        self.log_line(f"{request_id} {activity}{detail} -> {code} ({took:.1f} ms)")

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    self.close_connection = True  # the rest of the body is not read
                    raise BadRequest("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read
            raise BadRequest("body too large")
        return self.rfile.read(length)

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-") -> None:  # the default access log is replaced by log_line
        pass

    def log_line(self, text: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        sys.stderr.write(f"{stamp} {text}\n")


def describe(call: dict) -> str:
    """Short, non-sensitive detail for the log line: ids and flags only, never buyer data."""
    parts = []
    for name in ("generation", "instanceId", "orderId", "orderLineId", "status", "scene"):
        value = call.get(name)
        if isinstance(value, str):
            parts.append(f"{name}={value[:64]}")
    ids = call.get("instanceIds")
    if isinstance(ids, list):
        parts.append(f"instanceIds={len(ids)}")
    if call.get("testFlag") is True:
        parts.append("test")
    return (" " + " ".join(parts)) if parts else ""


def main() -> None:
    parser = argparse.ArgumentParser(description="Example upstream app for koogate (in-memory).")
    parser.add_argument("--port", type=int, default=3000, help="port on 127.0.0.1; 0 picks a free port")
    parser.add_argument("--base-url", default="https://app.example.com", help="public URL of the app")
    parser.add_argument("--debug-last-call", action="store_true",
                        help="serve the last received call on GET /debug/last-call (tests only: holds buyer data)")
    args = parser.parse_args()
    Handler.debug_last_call = args.debug_last_call
    Handler.upstream_secret = upstream_secret()

    # Seed for the deterministic initial passwords; set a real secret outside a demo.
    secret = os.environ.get("APP_SECRET", "python-upstream-demo-secret")
    Handler.store = Store(args.base_url, secret.encode())
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)  # loopback: koogate runs on this host
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop cleanly (exit status 0) on SIGTERM
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
