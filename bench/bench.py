#!/usr/bin/env python3
"""The benchmark race behind `bench/run`: start each server on loopback, load it with wrk
(max throughput) and bench's own fixed-rate loadgen (latency at 80 % of max), interleave
the servers round by round, and report medians and ratios measured in this one run.

Environment: ROUNDS (default 5), DURATION seconds per timed run (default 5), WASMTIME
(path of wasmtime 48.0.8; the serve peers are skipped when unset).
"""

import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench"
GUESTS = OUT / "guests" / "wasm32-wasip2" / "release"
REL = ROOT / "target" / "release"
ROUNDS = int(os.environ.get("ROUNDS", "5"))
DURATION = int(os.environ.get("DURATION", "5"))
CONNS = 32
WASMTIME = os.environ.get("WASMTIME") or None
TUNED = [
    "-O", "pooling-memory-keep-resident=4194304",
    "-O", "pooling-table-keep-resident=262144",
    "-O", "pooling-pagemap-scan=y",
    "-O", "pooling-decommit-batch-size=16",
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(port, path="/", host="bench", timeout=2.0):
    """One HTTP/1.1 GET on a fresh connection; the status code, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n".encode())
            data = s.recv(64)
            m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
            return int(m.group(1)) if m else None
    except OSError:
        return None


class Server:
    def __init__(self, name, cmd, env=None):
        self.name, self.cmd = name, cmd
        self.port = free_port()
        self.cmd = [c.replace("{PORT}", str(self.port)) for c in cmd]
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.log = open(OUT / f"{name}.log", "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env)

    def wait_ready(self, path="/", timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {OUT / (self.name + '.log')}")
            if status_of(self.port, path) == 200:
                return self
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} not ready within {timeout}s")

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def status_mib(self, key):
        """A size field of /proc/PID/status (`VmRSS`, `VmHWM`) in MiB, or None."""
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def rss_mib(self):
        return self.status_mib("VmRSS")

    def cpu_s(self):
        """CPU seconds the server has used so far, its own and its reaped children's
        (a process-per-request server's children count too)."""
        try:
            fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        # utime, stime, cutime, cstime: fields 14-17 of stat(5), 12-15 after the name.
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def to_ms(v):
    num, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(num) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url, duration, conns=CONNS):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, timeout=duration + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    count = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: .*", out)
    return {
        "rps": rps,
        "requests": count,
        "p50_ms": to_ms(lat["50"]),
        "p99_ms": to_ms(lat["99"]),
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errs.group(0) if errs else "",
    }


def loadgen(url, rate, seconds):
    env = dict(os.environ, TOKIO_WORKER_THREADS="1")
    out = subprocess.run(
        [str(REL / "loadgen"), url, str(rate), str(seconds), str(CONNS)],
        capture_output=True, text=True, timeout=seconds + 60, env=env,
    )
    return json.loads(out.stdout)


def make_app(dir_, name, components, routes, hosts=None):
    dir_.mkdir(parents=True, exist_ok=True)
    text = f'[app]\nname = "{name}"\n'
    if hosts:
        text += "hosts = [" + ", ".join(f'"{h}"' for h in hosts) + "]\n"
    for cname, (src, limits) in components.items():
        text += f'\n[component.{cname}]\nsource = "{src}"\n'
        if limits:
            text += f"limits = {limits}\n"
    for route, comp in routes:
        text += f'\n[[trigger.http]]\nroute = "{route}"\ncomponent = "{comp}"\n'
    (dir_ / "atoll.toml").write_text(text)
    return dir_


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def machine_speed():
    """Milliseconds for a fixed single-threaded task (a pure-Python loop, then SHA-256 of
    32 MiB), best of 3. Bench VMs differ from session to session, and one was seen running
    ~6x slower than the rest for everything: the same number before and after a run says
    the machine held still; different numbers between two reports say their absolute
    figures cannot be compared (their same-run ratios still can)."""
    import hashlib

    data = bytes(32 << 20)

    def once():
        t0 = time.perf_counter()
        n = 0
        for i in range(2_000_000):
            n += i
        t1 = time.perf_counter()
        hashlib.sha256(data).digest()
        t2 = time.perf_counter()
        return (t1 - t0) * 1000, (t2 - t1) * 1000

    runs = [once() for _ in range(3)]
    return {"python_loop_ms": min(r[0] for r in runs), "sha256_ms": min(r[1] for r in runs)}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    speed_before = machine_speed()
    log(f"machine speed before: {speed_before}")
    hello = GUESTS / "hello.wasm"
    hostile = GUESTS / "hostile.wasm"
    home = OUT / "home"
    atoll_env = {"ATOLL_HOME": str(home), "ATOLL_LOG": "warn"}
    apps = OUT / "apps"
    if apps.exists():
        shutil.rmtree(apps)
    hello_app = make_app(apps / "hello", "hello", {"hello": (hello, None)}, [("/...", "hello")])

    # Telemetry on: traces and metrics over OTLP/HTTP to a sink in this process (it reads
    # and discards each export, bench/ab.py's), beside the same server with it off.
    sys.path.insert(0, str(ROOT / "bench"))
    from ab import start_sink
    otel_env = dict(atoll_env, OTEL_EXPORTER_OTLP_ENDPOINT=start_sink())
    specs = [
        ("atoll", [str(REL / "atoll"), "up", str(hello_app), "--listen", "127.0.0.1:{PORT}"], atoll_env),
        ("atoll-otel", [str(REL / "atoll"), "up", str(hello_app), "--listen", "127.0.0.1:{PORT}"], otel_env),
        ("native-hyper", [str(REL / "native-hello"), "127.0.0.1:{PORT}"], None),
        ("process-per-request", [str(REL / "cgi-hello"), "127.0.0.1:{PORT}"], None),
    ]
    if WASMTIME:
        specs.insert(1, ("wasmtime-serve", [WASMTIME, "serve", "-Scli", "--addr", "127.0.0.1:{PORT}", str(hello)], None))
        specs.insert(2, ("wasmtime-serve-tuned", [WASMTIME, "serve", "-Scli", *TUNED, "--addr", "127.0.0.1:{PORT}", str(hello)], None))
    else:
        log("WASMTIME not set: skipping the wasmtime serve peers")

    results = {name: [] for name, _, _ in specs}
    servers = []
    try:
        for name, cmd, env in specs:
            log(f"starting {name}")
            servers.append(Server(name, cmd, env).wait_ready())

        # 1. Max throughput, keep-alive, interleaved rounds.
        for r in range(ROUNDS):
            for s in servers:
                wrk(s.url(), 1)  # warm-up, discarded
                cpu0 = s.cpu_s()
                res = wrk(s.url(), DURATION)
                # What each request cost the machine on the server's side: CPU time
                # over requests served (wrk's own CPU is not in it).
                res["cpu_us"] = (s.cpu_s() - cpu0) / max(res["requests"], 1) * 1e6
                if res["non2xx"]:
                    raise RuntimeError(f"{s.name}: {res['non2xx']} non-2xx responses")
                results[s.name].append(res)
                log(f"round {r + 1}/{ROUNDS} {s.name:22} {res['rps']:>10.0f} req/s  p99 {res['p99_ms']:.2f} ms  CPU {res['cpu_us']:.1f} us/req")
        rss = {s.name: s.rss_mib() for s in servers}

        # 2. Latency at 80 % of each server's own max, fixed rate.
        at80 = {}
        for s in servers:
            rate = int(med([x["rps"] for x in results[s.name]]) * 0.8)
            runs = [loadgen(s.url(), rate, max(DURATION, 3)) for _ in range(3)]
            at80[s.name] = {
                "rate": rate,
                "p50_ms": med([x["p50_us"] for x in runs]) / 1000,
                "p99_ms": med([x["p99_us"] for x in runs]) / 1000,
                "errors": sum(x["errors"] for x in runs),
            }
            log(f"at 80%: {s.name:22} {rate} req/s  p50 {at80[s.name]['p50_ms']:.2f} ms  p99 {at80[s.name]['p99_ms']:.2f} ms")

        # 3. One request at a time: the per-request cost without queueing.
        single = {}
        for s in servers:
            if s.name in ("atoll", "process-per-request", "native-hyper"):
                single[s.name] = med([wrk(s.url(), 2, conns=1)["p50_ms"] for _ in range(3)])
    finally:
        for s in servers:
            s.stop()

    # 4. Start to first 200, warm compile cache, vs a native hyper server.
    def first_response(cmd, env):
        port = free_port()
        cmd = [c.replace("{PORT}", str(port)) for c in cmd]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, **(env or {})))
        try:
            while time.perf_counter() - t0 < 30:
                if status_of(port, timeout=0.2) == 200:
                    return (time.perf_counter() - t0) * 1000
                time.sleep(0.001)
            return float("nan")
        finally:
            p.kill()
            p.wait()

    cold = {
        "atoll": med([first_response(specs[0][1], atoll_env) for _ in range(10)]),
        "native-hyper": med([first_response([str(REL / "native-hello"), "127.0.0.1:{PORT}"], None) for _ in range(10)]),
    }
    log(f"start to first 200: {cold}")

    # 5. Idle memory of one atoll serving 100 apps.
    many = [make_app(apps / f"app{i}", f"app{i}", {"hello": (hello, None)}, [(f"/app{i}/...", "hello")]) for i in range(100)]
    s = Server("atoll-100-apps", [str(REL / "atoll"), "up", *map(str, many), "--listen", "127.0.0.1:{PORT}"], atoll_env)
    try:
        s.wait_ready("/app99/")
        for i in range(100):
            assert status_of(s.port, f"/app{i}/") == 200
        time.sleep(1)
        rss_100 = s.rss_mib()
    finally:
        s.stop()
    log(f"idle RSS with 100 apps: {rss_100:.1f} MiB")

    # 6. Tenant fairness. The verdict: bench/flood's one-core placement (server on one
    # CPU, 20 connections that ignore retry-after flooding a hostile component with
    # loops, memory bombs and traps, the neighbour's wrk and the flood on the other CPU).
    import flood as flood_bench
    cpus = flood_bench.split_cpus()
    fair = None
    if cpus:
        fair = flood_bench.run_placement("1 core", cpus[0], cpus[1], flood_bench.make_app(), atoll_env)
    # For information: polite clients (they wait as retry-after asks), as this row was
    # measured before the flood existed.
    mixed = make_app(
        apps / "mixed", "mixed",
        {"hello": (hello, None), "hostile": (hostile, '{ memory = "32MiB", timeout = "1s", max_concurrency = 4 }')},
        [("/...", "hello"), ("/bad/...", "hostile")],
    )
    s = Server("atoll-hostile", [str(REL / "atoll"), "up", str(mixed), "--listen", "127.0.0.1:{PORT}"], atoll_env)
    try:
        s.wait_ready()
        wrk(s.url(), 1)
        calm = med([wrk(s.url(), DURATION)["rps"] for _ in range(2)])
        stormy = polite_storm(s)
    finally:
        s.stop()
    log(f"neighbour throughput: calm {calm:.0f}, beside polite hostile clients {stormy:.0f}")

    # 7. In process, no sockets: one request's instance against starting a process.
    inproc = in_process()
    log(f"in process: {inproc}")

    speed = {"before": speed_before, "after": machine_speed()}
    log(f"machine speed after: {speed['after']}")
    report(specs, results, rss, at80, single, cold, rss_100, calm, stormy, fair, speed, inproc)


def criterion(bench, keys, warm_up=2, measure=5):
    """Run one of atoll-http's criterion benches and return its estimates in µs, keyed by
    `keys` (a benchmark-name prefix -> key map); every key must be found."""
    out = subprocess.run(
        ["cargo", "bench", "-q", "-p", "atoll-http", "--bench", bench, "--",
         "--warm-up-time", str(warm_up), "--measurement-time", str(measure), "|".join(
             re.escape(k).replace("\\ ", ".") for k in keys)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    ).stdout
    unit = {"ns": 0.001, "µs": 1.0, "us": 1.0, "ms": 1000.0, "s": 1e6}
    found = {}
    for name, value, u in re.findall(r"^(\S[^\n]*?)\s+time:\s+\[\S+ \S+ ([\d.]+) (\S+) ", out, re.M):
        for prefix, key in keys.items():
            if name.startswith(prefix):
                found[key] = float(value) * unit[u]
    if set(found) != set(keys.values()):
        raise RuntimeError(f"could not read the {bench} bench's output:\n{out}")
    return found


def in_process():
    """In µs: one instance of hello (store, instantiate, call, read the body, drop) and
    starting and reaping `/bin/true`, the isolation unit of each way of serving without
    HTTP around it; and the compute workload natively and in a fresh guest instance."""
    found = criterion("instantiate", {"instantiate+handle+drop hello": "instance", "spawn+wait": "process"})
    found.update(criterion("compute", {"compute workload/native": "compute_native",
                                       "compute workload/guest": "compute_guest"}, measure=10))
    return found


def polite_storm(s):
    """The neighbour's throughput (wrk on /) while 4 clients send the hostile component
    infinite loops (2) and memory bombs (2), one request at a time each; a client answered
    503 waits as the server's retry-after asks (1 s), as HTTP clients and load balancers
    do. (Clients that do not wait are bench/flood's.)"""
    stop = threading.Event()

    def hammer(path):
        while not stop.is_set():
            if status_of(s.port, path, timeout=5) == 503:
                stop.wait(1.0)

    threads = [threading.Thread(target=hammer, args=(p,)) for p in ["/bad/loop"] * 2 + ["/bad/alloc"] * 2]
    for t in threads:
        t.start()
    time.sleep(0.5)
    try:
        return med([wrk(s.url(), DURATION)["rps"] for _ in range(2)])
    finally:
        stop.set()
        for t in threads:
            t.join()


def report(specs, results, rss, at80, single, cold, rss_100, calm, stormy, fair, speed, inproc):
    names = [n for n, _, _ in specs]
    rps = {n: med([x["rps"] for x in results[n]]) for n in names}
    cpu = {n: med([x["cpu_us"] for x in results[n]]) for n in names}
    lines = [
        "# atoll benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {platform.node()} · Linux {platform.release()} · "
        f"{os.cpu_count()} CPUs · wrk -t1 -c{CONNS}, {ROUNDS} interleaved rounds of {DURATION}s, medians · "
        "the same hello component for atoll and wasmtime serve",
        "",
        f"Machine speed, a fixed single-threaded task before / after the race (python loop of 2M, sha256 of 32 MiB): "
        f"{speed['before']['python_loop_ms']:.0f} / {speed['after']['python_loop_ms']:.0f} ms, "
        f"{speed['before']['sha256_ms']:.0f} / {speed['after']['sha256_ms']:.0f} ms. "
        "Absolute figures compare across reports only where these agree; ratios are within one run.",
        "",
        "| server | req/s (median) | min–max | p50 / p99 ms at max (wrk) | p50 / p99 ms at 80% of max (fixed rate) | server CPU µs per request (at max) | RSS after (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        xs = [x["rps"] for x in results[n]]
        if at80[n]["errors"]:
            log(f"warning: {n} had {at80[n]['errors']} failed requests under fixed-rate load")
        lines.append(
            f"| {n} | {rps[n]:,.0f} | {min(xs):,.0f}–{max(xs):,.0f} | {med([x['p50_ms'] for x in results[n]]):.2f} / "
            f"{med([x['p99_ms'] for x in results[n]]):.2f} | {at80[n]['p50_ms']:.2f} / {at80[n]['p99_ms']:.2f} @ {at80[n]['rate']:,} req/s{' (' + str(at80[n]['errors']) + ' errors)' if at80[n]['errors'] else ''} | "
            f"{cpu[n]:.1f} | {(rss.get(n) or float('nan')):.1f} |"
        )
    a = rps["atoll"]
    goals = []

    def goal(what, value, target, ok):
        goals.append(f"| {what} | {value} | {target} | {'met' if ok else '**not met**'} |")

    if "wasmtime-serve" in rps:
        goal("throughput vs default `wasmtime serve`", f"{a / rps['wasmtime-serve']:.2f}x", ">= 3x", a >= 3 * rps["wasmtime-serve"])
        goal("throughput vs tuned `wasmtime serve`", f"{a / rps['wasmtime-serve-tuned']:.2f}x", ">= 2x", a >= 2 * rps["wasmtime-serve-tuned"])
    goal("throughput vs native hyper", f"{100 * a / rps['native-hyper']:.1f}%", ">= 40%", a >= 0.4 * rps["native-hyper"])
    goal("telemetry on (OTLP traces and metrics to a local sink) vs off: throughput",
         f"{100 * rps['atoll-otel'] / a:.1f}% (p99 at max {med([x['p99_ms'] for x in results['atoll-otel']]):.2f} vs {med([x['p99_ms'] for x in results['atoll']]):.2f} ms)",
         ">= 95%", rps["atoll-otel"] >= 0.95 * a)
    goal("p99 at 80% of atoll's max", f"{at80['atoll']['p99_ms']:.2f} ms", "< 2 ms", at80["atoll"]["p99_ms"] < 2 and not at80["atoll"]["errors"])
    ratio = single["process-per-request"] / single["atoll"] if single.get("atoll") else float("nan")
    goal("per request vs a process per request (p50 at c=1)", f"{ratio:.0f}x faster ({single['atoll']:.3f} vs {single['process-per-request']:.3f} ms)", ">= 100x", ratio >= 100)
    cpu_ratio = cpu["process-per-request"] / cpu["atoll"]
    goal("per request vs a process per request (server CPU per request under load)", f"{cpu_ratio:.0f}x less ({cpu['atoll']:.1f} vs {cpu['process-per-request']:.0f} µs)", ">= 100x", cpu_ratio >= 100)
    unit_ratio = inproc["process"] / inproc["instance"]
    goal("per request vs a process per request (in process: one instance vs spawn + reap `/bin/true`)", f"{unit_ratio:.0f}x faster ({inproc['instance']:.1f} vs {inproc['process']:.0f} µs)", ">= 100x", unit_ratio >= 100)
    goal("instantiate + handle + drop, in process (criterion)", f"{inproc['instance']:.1f} µs", "< 20 µs", inproc["instance"] < 20)
    compute = inproc["compute_guest"] / inproc["compute_native"]
    goal("compute-heavy guest vs the same Rust code native (in process)", f"{compute:.2f}x ({inproc['compute_guest'] / 1000:.2f} vs {inproc['compute_native'] / 1000:.2f} ms)", "< 1.3x", compute < 1.3)
    goal("`atoll up` start to first 200, warm cache", f"{cold['atoll']:.1f} ms (native hyper {cold['native-hyper']:.1f} ms)", "< 30 ms", cold["atoll"] < 30)
    goal("idle RSS, one `atoll up` serving 100 apps", f"{rss_100:.1f} MiB", "< 200 MiB", rss_100 < 200)
    if fair:
        goal("a neighbour while another component is flooded (20 connections ignoring retry-after; server on one CPU, clients on the other)",
             f"{100 * fair['share']:.0f}% ({fair['flooded_rps']:,.0f} vs {fair['calm_rps']:,.0f} req/s), p99 {fair['flooded_p99_ms']:.2f} ms (calm {fair['calm_p99_ms']:.2f})",
             ">= 90%, p99 < 5 ms", fair["share"] >= 0.9 and fair["flooded_p99_ms"] < 5)
    lines += ["", "| goal | measured | target | |", "|---|---|---|---|", *goals, ""]
    lines.append(f"For information, a neighbour beside hostile clients that honour retry-after (4 clients, all CPUs shared): {100 * stormy / calm:.0f}% ({stormy:,.0f} vs {calm:,.0f} req/s). `bench/flood` has the flood on two CPUs as well.")
    lines.append("")
    lines.append("In-process figures: `cargo bench -p atoll-http --bench instantiate` and `--bench compute` (criterion's estimates), run after the race.")
    (OUT / "report.md").write_text("\n".join(lines) + "\n")
    (OUT / "results.json").write_text(json.dumps({"results": results, "rss": rss, "at80": at80, "single_ms": single, "cold_ms": cold, "rss_100_apps_mib": rss_100, "in_process_us": inproc, "hostile": {"calm": calm, "polite": stormy, "flood": fair}, "machine_speed": speed}, indent=1))
    svg(names, results)
    print("\n".join(lines))
    log(f"wrote {OUT / 'report.md'} and {OUT / 'report.svg'}")


def svg(names, results):
    """A bar chart of median req/s with min-max whiskers, as plain SVG."""
    w, bar, gap, left, top = 760, 34, 16, 190, 40
    h = top + len(names) * (bar + gap) + 40
    top_rps = max(max(x["rps"] for x in results[n]) for n in names) * 1.1
    scale = (w - left - 90) / top_rps
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13">',
           f'<text x="{left}" y="24" font-size="15" font-weight="bold">hello, keep-alive, req/s (median, min–max)</text>']
    for i, n in enumerate(names):
        xs = [x["rps"] for x in results[n]]
        m, y = med(xs), top + i * (bar + gap)
        color = "#1f77b4" if n == "atoll" else "#9aa5b1"
        out.append(f'<text x="{left - 8}" y="{y + bar / 2 + 4}" text-anchor="end">{n}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{m * scale:.1f}" height="{bar}" fill="{color}"/>')
        out.append(f'<line x1="{left + min(xs) * scale:.1f}" x2="{left + max(xs) * scale:.1f}" y1="{y + bar / 2}" y2="{y + bar / 2}" stroke="black"/>')
        out.append(f'<text x="{left + m * scale + 6:.1f}" y="{y + bar / 2 + 4}">{m:,.0f}</text>')
    out.append("</svg>")
    (OUT / "report.svg").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
