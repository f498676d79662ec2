#!/usr/bin/env python3
"""Fleet bench: three `atoll node`s on a nats-server of its own (loopback, free ports),
20 deploys under load, each a new component (the `env` test program with a custom
section that makes its bytes, and so its sha256, new every time), so every deploy
fetches and compiles on every node.

Reports (medians and p99 over the deploys):
- convergence: from the commit to the last node's swap (by the nodes' clocks, one machine)
  and as the deploy saw it (commit to the last report read);
- staging time per node, split into fetch and compile;
- failed requests during the deploys (goal 0), from a keep-alive load client per node;
- cold vs warm node join (empty state dir vs one with the blobs and the compile cache);
- memory per loaded app per node (RSS slope over 10 apps).

Usage: bench/fleet/run [--deploys N] [--json]  (writes target/bench/fleet.md).
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=60):
    t = time.time()
    while time.time() - t < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


def get(port, path="/", timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    except OSError:
        return None, ""
    finally:
        c.close()


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))
    return v[k]


def with_custom_section(wasm: bytes, tag: str) -> bytes:
    """The component with a custom section appended (valid anywhere at top level)."""
    name = b"atoll-bench"
    payload = tag.encode()
    body = leb(len(name)) + name + payload
    return wasm + b"\x00" + leb(len(body)) + body


def leb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Load:
    """Per node, one keep-alive client in a thread, as fast as it gets answers."""

    def __init__(self, ports):
        self.stop = False
        self.ok = 0
        self.failed = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(p,), daemon=True) for p in ports]

    def run(self, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not self.stop:
            try:
                conn.request("GET", "/")
                r = conn.getresponse()
                body = r.read()
                good = r.status == 200 and b"env VERSION=" in body
            except OSError as e:
                good = False
                body = str(e).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed.append((port, body[:200]))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop = True
        for t in self.threads:
            t.join(timeout=15)


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--atoll", default=os.path.join(ROOT, "target/release/atoll"))
    ap.add_argument("--env-wasm", required=True)
    ap.add_argument("--deploys", type=int, default=20)
    ap.add_argument("--apps", type=int, default=10, help="apps for the memory slope")
    ap.add_argument("--out", default=os.path.join(ROOT, "target/bench/fleet.md"))
    args = ap.parse_args()
    atoll = args.atoll
    env_wasm = open(args.env_wasm, "rb").read()
    tmp = tempfile.mkdtemp(prefix="atoll-fleet-bench-")
    procs = []

    def spawn(cmd, log):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
        procs.append(p)
        return p

    try:
        nport = free_port()
        spawn(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(nport), "-sd", f"{tmp}/js"], f"{tmp}/nats.log")
        wait_port(nport)
        url = f"nats://127.0.0.1:{nport}"

        def node(name, state):
            port = free_port()
            p = spawn([atoll, "node", "--nats", url, "--name", name, "--listen", f"127.0.0.1:{port}",
                       "--state", state, "--workers", "1"], f"{tmp}/{name}.log")
            wait_port(port)
            return p, port

        nodes = [node(f"n{i}", f"{tmp}/n{i}") for i in range(1, 4)]
        time.sleep(0.5)
        rss_empty = [rss(p.pid) for p, _ in nodes]

        def write_app(name, version, tag):
            d = f"{tmp}/apps/{name}-{version}"
            os.makedirs(d, exist_ok=True)
            with open(f"{d}/env.wasm", "wb") as f:
                f.write(with_custom_section(env_wasm, tag))
            with open(f"{d}/atoll.toml", "w") as f:
                f.write(f'[app]\nname = "{name}"\n\n[component.env]\nsource = "env.wasm"\n'
                        f'environment = {{ VERSION = "{version}" }}\n\n[[trigger.http]]\n'
                        f'route = "/..."\ncomponent = "env"\n')
            return d

        def deploy(d):
            r = subprocess.run([atoll, "deploy", d, "--nats", url, "--json", "--timeout", "60s"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"deploy failed:\n{r.stdout}\n{r.stderr}")
            return json.loads(r.stdout)

        deploy(write_app("demo", "v0", "v0"))
        conv_nodes, conv_seen, fetch, compile_ = [], [], [], []
        with Load([p for _, p in nodes]) as load:
            time.sleep(0.5)
            for i in range(1, args.deploys + 1):
                out = deploy(write_app("demo", f"v{i}", f"v{i}-{time.time_ns()}"))
                swaps = [n["swap_after_commit_ms"] for n in out["nodes"]]
                conv_nodes.append(max(swaps))
                conv_seen.append(out["convergence_ms"])
                fetch += [n["fetch_ms"] for n in out["nodes"]]
                compile_ += [n["compile_ms"] for n in out["nodes"]]
            time.sleep(0.5)
        ok, failed = load.ok, load.failed

        # Memory: RSS slope over more apps (each its own component bytes).
        rss_one = [rss(p.pid) for p, _ in nodes]
        for a in range(args.apps):
            d = write_app(f"app{a}", "v1", f"app{a}-{time.time_ns()}")
            # Each app on its own host so the routes do not overlap.
            text = open(f"{d}/atoll.toml").read().replace("[component.env]", f'hosts = ["app{a}.test"]\n\n[component.env]')
            open(f"{d}/atoll.toml", "w").write(text)
            deploy(d)
        time.sleep(1)
        rss_many = [rss(p.pid) for p, _ in nodes]
        per_app = statistics.median([(m - o) / args.apps for m, o in zip(rss_many, rss_one)])

        # Join: a fourth node, cold (empty state dir), then warm (restarted on its state dir).
        def join(state):
            t = time.time()
            p, port = node("n4", state)
            while True:
                st, _ = get(port, "/.atoll/ready", timeout=1)
                if st == 200:
                    break
                if time.time() - t > 120:
                    raise SystemExit("node n4 never got ready")
                time.sleep(0.005)
            dt = (time.time() - t) * 1000
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
            return dt

        colds, warms = [], []
        for k in range(3):
            shutil.rmtree(f"{tmp}/n4", ignore_errors=True)
            colds.append(join(f"{tmp}/n4"))
            warms.append(join(f"{tmp}/n4"))

        apps_total = 1 + args.apps
        report = {
            "deploys": args.deploys,
            "convergence_ms_nodes": {"p50": statistics.median(conv_nodes), "p99": pct(conv_nodes, 99), "max": max(conv_nodes)},
            "convergence_ms_seen_by_deploy": {"p50": statistics.median(conv_seen), "p99": pct(conv_seen, 99)},
            "stage_fetch_ms": {"p50": statistics.median(fetch), "p99": pct(fetch, 99)},
            "stage_compile_ms": {"p50": statistics.median(compile_), "p99": pct(compile_, 99)},
            "requests_ok": ok,
            "requests_failed": len(failed),
            "failures": [f"{p}: {b!r}" for p, b in failed[:5]],
            "join_cold_ms": statistics.median(colds),
            "join_warm_ms": statistics.median(warms),
            "join_apps": apps_total,
            "rss_empty_node_mib": statistics.median(rss_empty) / 2**20,
            "rss_per_app_mib": per_app / 2**20,
        }
        goal_conv = report["convergence_ms_nodes"]["p99"] < 500
        goal_fail = report["requests_failed"] == 0
        md = [
            "# Fleet bench",
            "",
            f"Three `atoll node`s and nats-server 2.9 on one 2-core machine (loopback), {args.deploys} deploys, each a new component (new sha256: every node fetches and compiles), under a keep-alive load client per node (Python, same cores).",
            "",
            "| measure | p50 | p99 | goal |",
            "|---|---|---|---|",
            f"| convergence, commit -> last node swapped (node clocks) | {report['convergence_ms_nodes']['p50']} ms | {report['convergence_ms_nodes']['p99']} ms | p99 < 500 ms: {'met' if goal_conv else 'MISSED'} |",
            f"| convergence as the deploy saw it | {report['convergence_ms_seen_by_deploy']['p50']} ms | {report['convergence_ms_seen_by_deploy']['p99']} ms | |",
            f"| staging: fetch (per node) | {report['stage_fetch_ms']['p50']} ms | {report['stage_fetch_ms']['p99']} ms | |",
            f"| staging: compile (per node) | {report['stage_compile_ms']['p50']} ms | {report['stage_compile_ms']['p99']} ms | |",
            "",
            f"Requests during the deploys: {ok} ok, {len(failed)} failed (goal 0: {'met' if goal_fail else 'MISSED'}).",
            "",
            f"Node join to ready with {apps_total} apps (median of 3): cold (empty state dir) {report['join_cold_ms']:.0f} ms, warm (its state dir: blobs and compile cache) {report['join_warm_ms']:.0f} ms.",
            "",
            f"Memory: an empty node {report['rss_empty_node_mib']:.1f} MiB RSS; each further loaded app (one small component) {report['rss_per_app_mib']:.2f} MiB per node (median slope over {args.apps} apps).",
            "",
        ]
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        open(args.out, "w").write("\n".join(md))
        print("\n".join(md))
        print(json.dumps(report, indent=2))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
