#!/usr/bin/env python3
"""Writes pre-signed KooGallery V2 `orderNotify` calls for the benchmark, one per line.

Each line is `<path>?signature=<hex>&timestamp=<ms>&nonce=<nonce>` TAB `<json body>`. Every call has its own nonce
(and order id), and every timestamp is "now" at generation time, so the file must be used within koogate's
timestamp window (60 s by default): run.sh generates a fresh file right before each wrk run.

Signing (V2): payloadMac = HMAC-SHA256(accessKey, body); canonical = accessKey + nonce + timestamp + hex(payloadMac);
signature = hex(HMAC-SHA256(accessKey, canonical)).

    gen_requests.py --self-test
    gen_requests.py --key-file access-key --probe https://127.0.0.1:8443/koogallery/v2 --cafile cert.pem --expect koogate
    gen_requests.py --key-file access-key --count 100000 --path /koogallery/v2 --out requests.txt
    gen_requests.py --key-file access-key --count 100000 --shards 2 --out reqs   # writes reqs.0 and reqs.1

With --shards N the calls are dealt round-robin into N files `<out>.0` .. `<out>.N-1` (one per wrk thread).
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import os
import ssl
import sys
import time
import urllib.parse

TEST_VECTOR = {
    "key": "test-access-key-0001",
    "nonce": "7F3A9C2E5B1D4F6A8C0E2B4D6F8A1C3E",
    "timestamp": "1700000000000",
    "body": '{"activity":"newInstance","businessId":"1a2b3c4d-0000-0000-0000-000000000001",'
    '"orderId":"CS2306070000ABCDE","orderLineId":"CS2306070000ABCDE-000001","testFlag":"1"}',
    "signature": "b3b0332111128d8538b3b5d7708286ff568ecadf50b8d5b4697daeff3aa9e940",
}


def sign(key: bytes, nonce: str, timestamp: str, body: bytes) -> str:
    payload_mac = hmac.digest(key, body, hashlib.sha256).hex()
    canonical = key + nonce.encode() + timestamp.encode() + payload_mac.encode()
    return hmac.digest(key, canonical, hashlib.sha256).hex()


def self_test() -> None:
    v = TEST_VECTOR
    got = sign(v["key"].encode(), v["nonce"], v["timestamp"], v["body"].encode())
    if got != v["signature"]:
        sys.exit(f"self-test FAILED: got {got}, want {v['signature']}")
    print("gen_requests.py self-test OK (V2 test vector)")


def read_key(path: str) -> bytes:
    with open(path, "rb") as f:
        key = f.read()
    key = key[:-1] if key.endswith(b"\n") else key
    key = key[:-1] if key.endswith(b"\r") else key
    if not key:
        sys.exit(f"empty access key in {path}")
    return key


def generate(key: bytes, count: int, path: str, outs, forge: bool = False) -> None:
    # A per-file random prefix keeps nonces unique across files (and across runs within the replay window).
    run = os.urandom(8).hex().upper()
    timestamp = str(int(time.time() * 1000))
    shards = len(outs)
    for shard, out in enumerate(outs):
        write_shard(key, range(shard, count, shards), run, timestamp, path, out, forge)


def write_shard(key: bytes, indices, run: str, timestamp: str, path: str, out, forge: bool) -> None:
    lines = []
    for i in indices:
        nonce = f"{run}{i:016X}"
        order = f"O{run}{i:010d}"
        body = (
            f'{{"activity":"orderNotify","orderId":"{order}","orderLineId":"{order}-000001","testFlag":"1"}}'
        ).encode()
        signature = sign(key, nonce, timestamp, body)
        if forge:  # one hex digit changed: well-formed, fresh, and wrong
            signature = ("0" if signature[0] != "0" else "1") + signature[1:]
        lines.append(
            f"{path}?signature={signature}&timestamp={timestamp}&nonce={nonce}\t{body.decode()}\n"
        )
        if len(lines) >= 65536:
            out.write("".join(lines))
            lines.clear()
    out.write("".join(lines))


def post(url: str, target: str, body: bytes, cafile: str):
    parts = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=10)
    try:
        conn.request("POST", target, body=body, headers={"Content-Type": "application/json;charset=UTF-8"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def probe(key: bytes, url: str, cafile: str, expect: str) -> None:
    """Sends one signed call (and, for koogate, a replay and a forged one) and checks the answers."""
    path = urllib.parse.urlsplit(url).path or "/"
    nonce = os.urandom(16).hex().upper()
    timestamp = str(int(time.time() * 1000))
    body = b'{"activity":"orderNotify","orderId":"OPROBE","orderLineId":"OPROBE-000001","testFlag":"1"}'
    sig = sign(key, nonce, timestamp, body)
    target = f"{path}?signature={sig}&timestamp={timestamp}&nonce={nonce}"
    status, headers, answer = post(url, target, body, cafile)
    if status != 200:
        sys.exit(f"probe {url}: HTTP {status}: {answer[:200]!r}")
    if expect == "plain":
        print(f"probe {expect}: signed call relayed, HTTP 200, {answer[:60]!r}")
        return
    if b'"resultCode":"000000"' not in answer:
        sys.exit(f"probe {url}: signed call refused: {answer[:300]!r}")
    want = base64.b64encode(hmac.digest(key, answer, hashlib.sha256)).decode()
    got = headers.get("body-sign", "")
    if f'"{want}"' not in got:
        sys.exit(f"probe {url}: Body-Sign {got!r} does not sign the body (want signature {want})")
    # The same call again must be refused (replay), and so must a call whose signature was tampered with.
    _, _, replay = post(url, target, body, cafile)
    forged_sig = ("0" if sig[0] != "0" else "1") + sig[1:]
    forged_nonce = os.urandom(16).hex().upper()
    _, _, forged = post(url, f"{path}?signature={forged_sig}&timestamp={timestamp}&nonce={forged_nonce}", body, cafile)
    for what, ans in (("replayed", replay), ("forged", forged)):
        if b'"resultCode":"000000"' in ans:
            sys.exit(f"probe {url}: a {what} call was accepted: {ans[:300]!r}")
    print(f"probe {expect}: signed call accepted (000000, valid Body-Sign); replayed and forged calls refused")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--self-test", action="store_true", help="check the signer against the V2 test vector")
    ap.add_argument("--key-file", help="file holding the access key (trailing newline ignored)")
    ap.add_argument("--count", type=int, default=100000, help="number of calls to write")
    ap.add_argument("--path", default="/koogallery/v2", help="request path (before the query)")
    ap.add_argument("--out", default="-", help="output file (prefix with --shards), '-' for stdout")
    ap.add_argument("--probe", metavar="URL", help="send one signed call to URL and check the answer, then exit")
    ap.add_argument("--cafile", help="CA/cert file trusted for --probe")
    ap.add_argument("--expect", choices=["koogate", "plain"], default="koogate", help="what answers --probe")
    ap.add_argument("--shards", type=int, default=0, help="split round-robin into N files <out>.0 .. <out>.N-1")
    ap.add_argument("--forge", action="store_true", help="write calls whose signature is wrong (one digit changed)")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    if not args.key_file:
        ap.error("--key-file is required")
    if args.count < 1:
        ap.error("--count must be positive")
    key = read_key(args.key_file)
    if args.probe:
        probe(key, args.probe, args.cafile, args.expect)
        return
    if args.out == "-":
        if args.shards:
            ap.error("--shards needs --out")
        generate(key, args.count, args.path, [sys.stdout], args.forge)
        return
    names = [f"{args.out}.{i}" for i in range(args.shards)] if args.shards else [args.out]
    files = [open(n + ".tmp", "w", encoding="ascii", newline="\n") for n in names]
    try:
        generate(key, args.count, args.path, files, args.forge)
    finally:
        for f in files:
            f.close()
    for n in names:
        os.replace(n + ".tmp", n)


if __name__ == "__main__":
    main()
