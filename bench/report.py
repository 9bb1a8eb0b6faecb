#!/usr/bin/env python3
"""Prints bench/run.sh's summary and targets table from its results directory (key=value files, one per run).

    report.py RESULTS_DIR
    report.py --self-test

Lines a later check reads stay as they were: `ratio koogate/nginx: X x` (the durable store when it ran) and
`added by koogate: p50 X ms, p99 Y ms, p99.9 Z ms` (the same instance, fixed rate).
"""

import os
import statistics
import sys

NAMES = {"direct": "direct (TLS, no hop)", "nginx": "nginx proxy", "koo-local": "koogate durable",
         "koo-mem": "koogate memory"}


def read(path: str) -> dict:
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition("=")
                if sep:
                    out.setdefault(k, v)
    except FileNotFoundError:
        pass
    return out


class Results:
    def __init__(self, root: str):
        self.root = root
        self.meta = read(os.path.join(root, "meta"))

    def one(self, name: str) -> dict:
        return read(os.path.join(self.root, name))

    def med(self, prefix: str, key: str):
        """Median of KEY over the rounds PREFIX.1, PREFIX.2, ... (None when none ran)."""
        vals = []
        for f in sorted(os.listdir(self.root)):
            if f.startswith(prefix + ".") and f[len(prefix) + 1:].isdigit():
                v = read(os.path.join(self.root, f)).get(key)
                if v not in (None, ""):
                    vals.append(float(v))
        return statistics.median(vals) if vals else None


def num(v, fmt="{:.1f}", none="-"):
    return none if v is None else fmt.format(v)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def fval(d: dict, key: str):
    v = d.get(key)
    return None if v in (None, "") else float(v)


def targets_row(rows, issue, what, measured, ok):
    status = "not measured" if ok is None else ("met" if ok else "NOT MET")
    rows.append((issue, what, measured, status))


def report(r: Results) -> str:
    m = r.meta
    koo = m.get("summary_koogate", "koo-local")
    koos = m.get("koogate", koo).split()
    out = []
    w = out.append
    w("")
    w("=" * 110)
    w(f"koogate vs nginx — {m.get('cores', '?')} cores, same signed V2 orderNotify calls (a new order and nonce each)")
    w(f"  nginx: plain TLS reverse proxy (no verification), worker_processes {m.get('nginx_workers', '?')}, "
      f"upstream keep-alive pool 32; TLS [{m.get('tls_nginx', '?')}]")
    w(f"  koogate: full V2 verification, normalisation, Body-Sign; instances: {' '.join(koos)}; "
      f"TLS [{m.get('tls_koogate', '?')}]")
    w("  direct: the nginx proxy's second server block answering {} itself over TLS (no upstream hop: the limit)")
    w(f"  upstream (shared): nginx returning a static {{}} on loopback, worker_processes {m.get('upstream_workers', '?')}")
    w(f"  phases: {m.get('phases', '?')}{'  (QUICK=1: smoke-run sizes)' if m.get('quick') == '1' else ''}")

    tp = {t: {k: r.med(f"tp.{t}", k) for k in ("rps", "p50_ms", "p99_ms", "p999_ms", "cpu_us_per_call")}
          for t in ["direct", "nginx"] + koos}
    n_rps, n_cpu = tp["nginx"]["rps"], tp["nginx"]["cpu_us_per_call"]
    w("")
    w(f"Keep-alive throughput: wrk -t{m.get('threads')} -c{m.get('connections')}, {m.get('duration')} s, "
      f"median of {m.get('rounds')} round(s)")
    w(f"  {'':22} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'p99.9 ms':>9} {'CPU µs/call':>12} {'vs nginx':>9}")
    for t, v in tp.items():
        w(f"  {NAMES.get(t, t):22} {num(v['rps']):>10} {num(v['p50_ms'], '{:.3f}'):>9} {num(v['p99_ms'], '{:.3f}'):>9}"
          f" {num(v['p999_ms'], '{:.3f}'):>9} {num(v['cpu_us_per_call']):>12} {num(ratio(v['rps'], n_rps), '{:.2f}x'):>9}")
    r_koo = ratio(tp[koo]["rps"], n_rps)
    w(f"  ratio koogate/nginx: {num(r_koo, '{:.2f}')} x")
    r_mem = ratio(tp.get("koo-mem", {}).get("rps"), n_rps)
    r_dm = ratio(tp.get("koo-local", {}).get("rps"), tp.get("koo-mem", {}).get("rps"))
    if "koo-mem" in tp and koo != "koo-mem":
        w(f"  ratio koogate(memory store)/nginx: {num(r_mem, '{:.2f}')} x; durable/memory: {num(r_dm, '{:.2f}')} x"
          " (target >= 0.9)")

    rate = {t: {k: r.med(f"rate.{t}", k) for k in ("rps", "p50_ms", "p99_ms", "p999_ms")} for t in ["nginx"] + koos}
    w("")
    w(f"Fixed moderate rate: -c{m.get('rate_connections')}, ~{m.get('rate_delay_ms')} ms between calls per connection,"
      f" {m.get('rate_duration')} s")
    w(f"  {'':22} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'p99.9 ms':>9}")
    for t, v in rate.items():
        w(f"  {NAMES.get(t, t):22} {num(v['rps']):>10} {num(v['p50_ms'], '{:.3f}'):>9} {num(v['p99_ms'], '{:.3f}'):>9}"
          f" {num(v['p999_ms'], '{:.3f}'):>9}")
    added = {}
    for t in koos:
        added[t] = {k: (None if rate[t][k] is None or rate["nginx"][k] is None else rate[t][k] - rate["nginx"][k])
                    for k in ("p50_ms", "p99_ms", "p999_ms")}
    a = added[koo]
    w(f"  added by koogate: p50 {num(a['p50_ms'], '{:.3f}')} ms, p99 {num(a['p99_ms'], '{:.3f}')} ms, "
      f"p99.9 {num(a['p999_ms'], '{:.3f}')} ms")
    for t in koos:
        if t != koo:
            b = added[t]
            w(f"  added by koogate ({NAMES[t]}): p50 {num(b['p50_ms'], '{:.3f}')} ms, p99 {num(b['p99_ms'], '{:.3f}')}"
              f" ms, p99.9 {num(b['p999_ms'], '{:.3f}')} ms")

    w("")
    w(f"New TLS connection per call (how KooGallery calls): {m.get('newconn_procs')} client processes, "
      f"{m.get('newconn_duration')} s, latency = connect to last byte")
    w(f"  {'':36} {'calls/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'p99.9 ms':>9} {'CPU µs/call':>12} {'resumed':>9}")
    nc = {}
    for kind in ("full", "resume"):
        for t in ["nginx", koo]:
            d = r.one(f"newconn.{t}.{kind}")
            nc[(t, kind)] = d
            label = f"{NAMES[t]}, {'full handshake' if kind == 'full' else 'resumption offered'}"
            res = f"{d.get('resumed', '-')}/{d.get('requests', '-')}" if d else "-"
            w(f"  {label:36} {num(fval(d, 'rps')):>9} {num(fval(d, 'p50_ms'), '{:.3f}'):>9}"
              f" {num(fval(d, 'p99_ms'), '{:.3f}'):>9} {num(fval(d, 'p999_ms'), '{:.3f}'):>9}"
              f" {num(fval(d, 'cpu_us_per_call')):>12} {res:>9}")

    w("")
    w(f"Full TLS handshakes: {m.get('hs_procs')} x openssl s_time -new, {m.get('hs_duration')} s (handshake + close)")
    hs = {t: r.one(f"hs.{t}") for t in ("nginx", koo)}
    for t, d in hs.items():
        w(f"  {NAMES[t]:22} {num(fval(d, 'handshakes_per_s')):>10} handshakes/s   server CPU "
          f"{num(fval(d, 'cpu_us_per_handshake'))} µs/handshake")

    w("")
    w("Instructions per call (valgrind --tool=callgrind, servers' own instructions; stable on a shared machine)")
    cg = {t: r.one(f"cg.{t}") for t in ("direct", "nginx", "koo-local")}
    n_ir = fval(cg["nginx"], "ir_per_call")
    w(f"  {'':22} {'keep-alive call':>16} {'vs nginx':>9} {'new-connection call':>20} {'vs nginx':>9}")
    for t, d in cg.items():
        ka, ncc = fval(d, "ir_per_call"), fval(d, "ir_per_newconn_call")
        w(f"  {NAMES[t]:22} {num(ka, '{:,.0f}'):>16} {num(ratio(ka, n_ir), '{:.2f}x'):>9}"
          f" {num(ncc, '{:,.0f}'):>20} {num(ratio(ncc, fval(cg['nginx'], 'ir_per_newconn_call')), '{:.2f}x'):>9}")
    if cg["nginx"]:
        w(f"  batches: {cg['nginx'].get('calls')} keep-alive calls on one connection, then calls on new connections")

    w("")
    conns = m.get("idle_conns", "").split()
    w("Memory with idle TLS keep-alive connections (each made one call; RSS summed over nginx's processes)")
    w(f"  {'':22} {'idle MB':>9} " + " ".join(f"{c + ' conns MB':>15}" for c in conns) + f" {'KB/conn':>9}")
    idle = {t: r.one(f"idle.{t}") for t in ("nginx", koo)}
    for t, d in idle.items():
        base = fval(d, "rss_kb_0")
        cells = [num(None if fval(d, f"rss_kb_{c}") is None else fval(d, f"rss_kb_{c}") / 1024) for c in conns]
        last = fval(d, f"rss_kb_{conns[-1]}") if conns else None
        per = None if base is None or last is None else (last - base) / int(conns[-1])
        w(f"  {NAMES[t]:22} {num(None if base is None else base / 1024):>9} "
          + " ".join(f"{c:>15}" for c in cells) + f" {num(per):>9}")

    w("")
    rss = r.one("rss")
    first, second = rss.get("first"), rss.get("second")
    g = None
    if rss:
        r1, r2 = fval(rss, f"rss_kb_at_{first}"), fval(rss, f"rss_kb_at_{second}")
        g = (r2 - r1) / r1 * 100
        per_call = (r2 - r1) * 1024 / (int(rss[f"calls_at_{second}"]) - int(rss[f"calls_at_{first}"]))
        w(f"RSS growth, durable store (a fresh instance, a new order per call): after warm-up "
          f"{fval(rss, 'rss_kb_warm') / 1024:.1f} MB; after {rss[f'calls_at_{first}']} calls {r1 / 1024:.1f} MB;"
          f" after {rss[f'calls_at_{second}']} calls {r2 / 1024:.1f} MB: {g:+.1f} % ({per_call:.0f} B per call;"
          f" records {rss.get(f'records_at_{first}')} -> {rss.get(f'records_at_{second}')})")
    else:
        w("RSS growth: not run")

    w("")
    fl, flf = r.one(f"flood.{koo}"), r.one(f"flood.{koo}.forged")
    if fl:
        base = rate[koo]
        w(f"Forged-signature flood ({m.get('flood_connections')} keep-alive connections, {num(fval(flf, 'rps'))} "
          f"forged calls/s refused, server CPU {num(fval(flf, 'cpu_us_per_call'))} µs each)")
        w(f"  good calls at the fixed rate: {num(fval(fl, 'rps'))}/s, p50 {num(fval(fl, 'p50_ms'), '{:.3f}')} ms, "
          f"p99 {num(fval(fl, 'p99_ms'), '{:.3f}')} ms, p99.9 {num(fval(fl, 'p999_ms'), '{:.3f}')} ms "
          f"(without the flood: p99 {num(base['p99_ms'], '{:.3f}')} ms, p99.9 {num(base['p999_ms'], '{:.3f}')} ms)")
    else:
        w("Forged-signature flood: not run")

    w("")
    rs = r.one("restart")
    restart_s = fval(rs, "seconds")
    w("Restart: " + (rs.get("line") or rs.get("note") or "not run"))
    w("")
    w(f"CPU busy with other work, sampled before / after the shared-server phases: {m.get('busy_before', '?')}% / "
      f"{m.get('busy_after', '?')}% (should be ~0; callgrind counts do not depend on it)")

    # ------------------------------------------------------------------------------------------------ targets
    rows = []
    dur = "koo-local" in tp
    k_l = tp.get("koo-local", {})
    targets_row(rows, "11", "keep-alive throughput, durable store >= 1.0x nginx",
                f"{num(ratio(k_l.get('rps'), n_rps), '{:.2f}')} x", None if not dur or r_koo is None else
                ratio(k_l.get("rps"), n_rps) >= 1.0)
    targets_row(rows, "11", "keep-alive throughput, memory store >= 1.2x nginx", f"{num(r_mem, '{:.2f}')} x",
                None if r_mem is None else r_mem >= 1.2)
    c = ratio(k_l.get("cpu_us_per_call"), n_cpu)
    targets_row(rows, "11", "CPU per call (durable) <= 1.1x nginx's",
                f"{num(k_l.get('cpu_us_per_call'))} vs {num(n_cpu)} µs = {num(c, '{:.2f}')} x",
                None if c is None else c <= 1.1)
    ir = ratio(fval(cg["koo-local"], "ir_per_call"), n_ir)
    targets_row(rows, "11", "instructions per call (callgrind) <= 1.1x nginx's", f"{num(ir, '{:.2f}')} x",
                None if ir is None else ir <= 1.1)
    targets_row(rows, "10", "durable store throughput >= 0.9x memory store's", f"{num(r_dm, '{:.2f}')} x",
                None if r_dm is None else r_dm >= 0.9)
    ad = added.get("koo-local", {})
    targets_row(rows, "10", "added p99 at ~1000 calls/s, durable <= 1 ms", f"{num(ad.get('p99_ms'), '{:.3f}')} ms",
                None if ad.get("p99_ms") is None else ad["p99_ms"] <= 1.0)
    targets_row(rows, "10", "added p99.9 at ~1000 calls/s, durable <= 5 ms", f"{num(ad.get('p999_ms'), '{:.3f}')} ms",
                None if ad.get("p999_ms") is None else ad["p999_ms"] <= 5.0)
    targets_row(rows, "10", f"RSS after {second or '200k'} calls <= +20 % of after {first or '20k'}",
                f"{num(g, '{:+.1f}')} %", None if g is None else g <= 20.0)
    targets_row(rows, "10", "restart with 1M records + 24 h of replay keys < 2 s", f"{num(restart_s, '{:.2f}')} s",
                None if restart_s is None else restart_s < 2.0)
    for (t, kind), d in nc.items():
        if kind == "full" and t != "nginx":
            ncr = ratio(fval(d, "rps"), fval(nc[("nginx", "full")], "rps"))
            rows.append(("11", "new TLS connection per call: calls/s vs nginx (reported)",
                         f"{num(fval(d, 'rps'))}/s, p99 {num(fval(d, 'p99_ms'), '{:.2f}')} ms ({num(ncr, '{:.2f}')} x)",
                         "reported" if d else "not measured"))
    hr = ratio(fval(hs[koo], "handshakes_per_s"), fval(hs["nginx"], "handshakes_per_s"))
    rows.append(("11", "full TLS handshakes/s vs nginx (reported)",
                 f"{num(fval(hs[koo], 'handshakes_per_s'))}/s ({num(hr, '{:.2f}')} x)",
                 "reported" if hs[koo] else "not measured"))
    d = idle[koo]
    last = conns[-1] if conns else "?"
    rows.append(("11", f"RSS with {last} idle TLS connections vs nginx (reported)",
                 f"{num(None if fval(d, f'rss_kb_{last}') is None else fval(d, f'rss_kb_{last}') / 1024)} MB vs "
                 f"{num(None if fval(idle['nginx'], f'rss_kb_{last}') is None else fval(idle['nginx'], f'rss_kb_{last}') / 1024)} MB",
                 "reported" if d else "not measured"))
    rows.append(("11", "good-call p99 during a forged-signature flood (reported)",
                 f"{num(fval(fl, 'p99_ms'), '{:.3f}')} ms (without: {num(rate[koo]['p99_ms'], '{:.3f}')} ms)",
                 "reported" if fl else "not measured"))
    w("")
    w("Targets (issue: what | measured | status)")
    width = max(len(x[1]) for x in rows)
    mw = max(len(x[2]) for x in rows)
    for issue, what, measured, status in rows:
        w(f"  #{issue}  {what:<{width}}  {measured:<{mw}}  {status}")
    w("=" * 110)
    return "\n".join(out)


def self_test() -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        def put(name, **kv):
            with open(os.path.join(d, name), "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in kv.items())
        put("meta", koogate="koo-local koo-mem", summary_koogate="koo-local", idle_conns="1000 5000")
        put("tp.nginx.1", rps=100, cpu_us_per_call=10)
        put("tp.koo-local.1", rps=95, cpu_us_per_call=12)
        put("tp.koo-mem.1", rps=130)
        put("rate.nginx.1", p50_ms=0.1, p99_ms=0.2, p999_ms=0.5)
        put("rate.koo-local.1", p50_ms=0.3, p99_ms=1.5, p999_ms=2.5)
        text = report(Results(d))
    assert "ratio koogate/nginx: 0.95 x" in text, text
    assert "added by koogate: p50 0.200 ms, p99 1.300 ms, p99.9 2.000 ms" in text, text
    assert "durable/memory: 0.73 x" in text, text
    assert "NOT MET" in text and "not measured" in text
    print("report.py self-test OK")


def main() -> None:
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(report(Results(sys.argv[1])))


if __name__ == "__main__":
    main()
