#!/usr/bin/env python3
"""TLS client modes of the benchmark that wrk cannot do (bench/README.md): every call is a signed V2 `orderNotify`
with its own nonce and order, signed when it is sent (so no call goes stale however slow the server is).

    tls_client.py newconn --url URL --cafile C --key-file K --expect koogate --procs 4 --seconds 10 [--resume] --out F
        A new TCP + TLS connection per call (how KooGallery calls), `Connection: close`, from several processes.
        Writes calls, calls/s, p50/p99/p99.9 (connect to last byte), wrong answers and how many handshakes resumed.
    tls_client.py hold --url URL --cafile C --key-file K --expect plain --count 1000 --status F
        Opens COUNT TLS connections, makes one call on each and keeps them open (idle keep-alive). Writes
        `established=N failed=M` to F once all are up, and `alive=N` to F on SIGUSR1; exits on SIGTERM.
    tls_client.py batch --url URL --cafile C --key-file K --expect koogate --warmup 200 --calls 2000 \\
            [--newconn] --before "callgrind_control -z PID" --after "callgrind_control -d PID"
        One client, one call at a time: WARMUP calls, then runs BEFORE, sends CALLS calls (on one keep-alive
        connection, or a new connection each with --newconn), then runs AFTER. For instruction counts.
    tls_client.py --self-test
"""

import argparse
import asyncio
import math
import multiprocessing
import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_requests import read_key, sign  # noqa: E402  (same directory)


class Target:
    def __init__(self, url: str, cafile: str, key: bytes, expect: str):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path or "/"
        self.key, self.expect = key, expect
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.run = os.urandom(6).hex().upper()
        self.n = 0

    def request(self, close: bool) -> bytes:
        """The next signed call, as HTTP/1.1 bytes."""
        self.n += 1
        nonce = f"{self.run}{os.getpid():06X}{self.n:012X}"
        order = f"T{self.run}{os.getpid()}{self.n:010d}"
        body = (
            f'{{"activity":"orderNotify","orderId":"{order}","orderLineId":"{order}-000001","testFlag":"1"}}'
        ).encode()
        ts = str(int(time.time() * 1000))
        target = f"{self.path}?signature={sign(self.key, nonce, ts, body)}&timestamp={ts}&nonce={nonce}"
        conn = "Connection: close\r\n" if close else ""
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json;charset=UTF-8\r\nContent-Length: {len(body)}\r\n{conn}\r\n"
        )
        return head.encode() + body

    def good(self, head: bytes, body: bytes) -> bool:
        if not head.startswith(b"HTTP/1.1 200"):
            return False
        if self.expect == "plain":
            return True
        return b'"resultCode":"000000"' in body and b"\r\nbody-sign:" in head.lower()


def split_response(data: bytes):
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    raise ValueError("answer without Content-Length")


def read_response_sync(sock) -> tuple:
    """One keep-alive answer (Content-Length framed) from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, body = split_response(data)
    want = content_length(head)
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the answer")
        body += chunk
    return head, body


def percentile(sorted_values, p: float) -> float:
    if not sorted_values:
        return 0.0
    # Nearest rank: the smallest value with at least p % of the values at or below it.
    i = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values) - 1e-9) - 1))
    return sorted_values[i]


# ------------------------------------------------------------------------------------------------ newconn
def newconn_worker(args, key: bytes, deadline: float, out) -> None:
    t = Target(args.url, args.cafile, key, args.expect)
    lat, bad, errors, resumed, example = [], 0, 0, 0, ""
    session = None
    while time.time() < deadline:
        request = t.request(close=True)
        start = time.perf_counter()
        try:
            with socket.create_connection((t.host, t.port), timeout=10) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with t.ctx.wrap_socket(raw, server_hostname=t.host, session=session) as s:
                    s.sendall(request)
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    resumed += s.session_reused
                    if args.resume:
                        session = s.session
        except (OSError, ssl.SSLError) as e:
            errors += 1
            example = example or f"{type(e).__name__}: {e}"
            continue
        lat.append(time.perf_counter() - start)
        head, body = split_response(data)
        if not t.good(head, body):
            bad += 1
            example = example or (head[:80] + b" " + body[:200]).decode(errors="replace")
    out.send((lat, bad, errors, resumed, example))
    out.close()


def newconn(args, key: bytes) -> None:
    deadline = time.time() + args.seconds
    pipes, procs = [], []
    started = time.time()
    for _ in range(args.procs):
        r, w = multiprocessing.Pipe(duplex=False)
        p = multiprocessing.Process(target=newconn_worker, args=(args, key, deadline, w))
        p.start()
        pipes.append(r)
        procs.append(p)
    lat, bad, errors, resumed, example = [], 0, 0, 0, ""
    for r in pipes:
        la, b, e, res, ex = r.recv()
        lat += la
        bad, errors, resumed = bad + b, errors + e, resumed + res
        example = example or ex
    for p in procs:
        p.join()
    secs = time.time() - started
    lat.sort()
    ms = [x * 1000 for x in lat]
    lines = [
        f"requests={len(lat)}",
        f"duration_s={secs:.3f}",
        f"rps={len(lat) / secs:.1f}",
        f"p50_ms={percentile(ms, 50):.3f}",
        f"p99_ms={percentile(ms, 99):.3f}",
        f"p999_ms={percentile(ms, 99.9):.3f}",
        f"max_ms={(ms[-1] if ms else 0):.3f}",
        f"bad={bad}",
        f"errors={errors}",
        f"resumed={resumed}",
        "bad_example=" + example.replace("\n", " ").replace("\r", " "),
    ]
    write_lines(args.out, lines)


def write_lines(path: str, lines) -> None:
    text = "\n".join(lines) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# ------------------------------------------------------------------------------------------------ hold
async def hold_one(t: Target, gate: asyncio.Semaphore, state: dict) -> None:
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(t.host, t.port, ssl=t.ctx, server_hostname=t.host), 30
            )
            writer.write(t.request(close=False))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            body = await asyncio.wait_for(reader.readexactly(content_length(head)), 30)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            state["failed"] += 1
            state["example"] = state["example"] or f"{type(e).__name__}: {e}"
            return
        if not t.good(head, body):
            state["failed"] += 1
            state["example"] = state["example"] or body[:200].decode(errors="replace")
            writer.close()
            return
        state["alive"] += 1
        state["writers"].append(writer)
    try:
        await reader.read(1)  # returns b"" when the server closes the idle connection
    except (OSError, ssl.SSLError):
        pass
    state["alive"] -= 1


async def hold_main(args, key: bytes) -> None:
    t = Target(args.url, args.cafile, key, args.expect)
    state = {"alive": 0, "failed": 0, "example": "", "writers": []}
    gate = asyncio.Semaphore(args.parallel)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: write_lines(args.status, [f"alive={state['alive']}", f"failed={state['failed']}"])
    )
    tasks = [asyncio.ensure_future(hold_one(t, gate, state)) for _ in range(args.count)]
    while state["alive"] + state["failed"] < args.count and not all(task.done() for task in tasks):
        await asyncio.sleep(0.05)
    write_lines(
        args.status,
        [f"established={state['alive']}", f"failed={state['failed']}", "example=" + state["example"][:200]],
    )
    await stop
    for task in tasks:
        task.cancel()


# ------------------------------------------------------------------------------------------------ batch
def run_hook(cmd: str) -> None:
    if cmd:
        subprocess.run(shlex.split(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def batch(args, key: bytes) -> None:
    t = Target(args.url, args.cafile, key, args.expect)
    conn = [None]

    def call(newconn: bool) -> None:
        if conn[0] is None:
            raw = socket.create_connection((t.host, t.port), timeout=120)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn[0] = t.ctx.wrap_socket(raw, server_hostname=t.host)
        s = conn[0]
        s.sendall(t.request(close=newconn))
        head, body = read_response_sync(s)
        if not t.good(head, body):
            sys.exit(f"batch: wrong answer: {head[:80]!r} {body[:200]!r}")
        if newconn:
            s.close()
            conn[0] = None

    for _ in range(args.warmup):
        call(args.newconn)
    run_hook(args.before)
    started = time.time()
    for _ in range(args.calls):
        call(args.newconn)
    secs = time.time() - started
    run_hook(args.after)
    print(f"calls={args.calls} seconds={secs:.2f}")


def self_test() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 1001)], 99.9) == 999.0
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nBody-Sign: x"
    assert content_length(head) == 5
    t = Target("https://127.0.0.1:1/p", None, b"k", "koogate")
    assert t.good(head, b'{"resultCode":"000000"}') and not t.good(head, b'{"resultCode":"000001"}')
    assert t.request(True) != t.request(True)
    print("tls_client.py self-test OK")


def main() -> None:
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["newconn", "hold", "batch"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--expect", choices=["koogate", "plain"], default="koogate")
    ap.add_argument("--procs", type=int, default=4, help="newconn: client processes")
    ap.add_argument("--seconds", type=float, default=10, help="newconn: duration")
    ap.add_argument("--resume", action="store_true", help="newconn: resume the previous TLS session")
    ap.add_argument("--out", default="-", help="newconn: result file (key=value lines)")
    ap.add_argument("--count", type=int, default=1000, help="hold: connections")
    ap.add_argument("--parallel", type=int, default=64, help="hold: handshakes in flight at once")
    ap.add_argument("--status", default="-", help="hold: status file")
    ap.add_argument("--warmup", type=int, default=200, help="batch: calls before BEFORE")
    ap.add_argument("--calls", type=int, default=2000, help="batch: calls between BEFORE and AFTER")
    ap.add_argument("--newconn", action="store_true", help="batch: a new TLS connection per call")
    ap.add_argument("--before", default="", help="batch: command run after the warm-up")
    ap.add_argument("--after", default="", help="batch: command run after the batch")
    args = ap.parse_args()
    key = read_key(args.key_file)
    if args.mode == "newconn":
        newconn(args, key)
    elif args.mode == "hold":
        asyncio.run(hold_main(args, key))
    else:
        batch(args, key)


if __name__ == "__main__":
    main()
