#!/usr/bin/env python3
"""Two atoll binaries, the same app, interleaved: is B slower per request than A?

    bench/ab.py OLD_ATOLL NEW_ATOLL [--wasm HELLO.wasm] [--rounds 7] [--duration 5]
                [--a-args "..."] [--b-args "--admin 127.0.0.1:0"]
                [--a-env "K=V ..."] [--b-env "OTEL_EXPORTER_OTLP_ENDPOINT={sink}"]

A and B may be the same binary with different `atoll up` flags (`--a-args`, `--b-args`)
or environment (`--a-env`, `--b-env`). `{sink}` in an environment value is the URL of a
local OTLP/HTTP receiver this script serves (it reads and discards each export; it runs
on core 1 with wrk, never on the server's core), for the cost of telemetry.

Each round starts A then B (the order alternates every round), each on core 0 with one
event loop (`taskset -c 0 atoll up --workers 1`), and drives it with wrk on core 1
(`taskset -c 1 wrk -t1 -c32`), so the load generator never shares the server's core and
the server's max throughput on one core is what is measured, with the server's own CPU time
per request (user + system, from /proc). Prints each round and the medians. Needs wrk and taskset, and 2 cores.
Loopback only; every server is stopped at the end of its run.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                if b"200" in s.recv(64):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("server did not answer in time")


def cpu_seconds(pid):
    """(user, system) CPU time of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def start_sink():
    """An OTLP/HTTP receiver on a free loopback port: reads each POST, answers 200."""
    import http.server
    import threading

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def run(binary, app, duration, home, extra=(), env=None):
    port = free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", "0", binary, "up", app, "--workers", "1", "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, ATOLL_HOME=home, ATOLL_LOG="warn", **(env or {})),
    )
    try:
        wait_ready(port, proc)
        # A short warm-up, then the measured run.
        subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", "-d1s", f"http://127.0.0.1:{port}/"],
                       capture_output=True, check=True)
        cpu_before = cpu_seconds(proc.pid)
        out = subprocess.run(
            ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, check=True,
        ).stdout
        cpu_after = cpu_seconds(proc.pid)
        user, system = (a - b for a, b in zip(cpu_after, cpu_before))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        print(out, file=sys.stderr)
        raise SystemExit("errors during the run")
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, float(p99.group(1)) * scale[p99.group(2)], (user + system) / requests * 1e6, system / requests * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--wasm", required=True, help="a hello component (answers GET / with 200)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--a-args", default="", help="extra `atoll up` flags for A")
    ap.add_argument("--b-args", default="", help="extra `atoll up` flags for B")
    ap.add_argument("--a-env", default="", help="extra environment for A: K=V ...")
    ap.add_argument("--b-env", default="", help="extra environment for B: K=V ... ({sink}: the local OTLP receiver)")
    args = ap.parse_args()
    extra = {"A": args.a_args.split(), "B": args.b_args.split()}
    sink = None
    if "{sink}" in args.a_env + args.b_env:
        # This process (the receiver's threads) shares core 1 with wrk.
        os.sched_setaffinity(0, {1})
        sink = start_sink()
    envs = {
        name: dict(kv.replace("{sink}", sink or "").split("=", 1) for kv in spec.split())
        for name, spec in (("A", args.a_env), ("B", args.b_env))
    }
    with tempfile.TemporaryDirectory() as tmp:
        app = os.path.join(tmp, "app")
        os.mkdir(app)
        with open(os.path.join(app, "atoll.toml"), "w") as f:
            f.write(f'[app]\nname = "ab"\n[component.hello]\nsource = "{args.wasm}"\n'
                    '[[trigger.http]]\nroute = "/..."\ncomponent = "hello"\n')
        home = os.path.join(tmp, "home")
        results = {"A": [], "B": []}
        for r in range(args.rounds):
            order = [("A", args.a), ("B", args.b)]
            if r % 2:
                order.reverse()
            for name, binary in order:
                rps, p99, cpu_us, sys_us = run(binary, app, args.duration, home, extra[name], envs[name])
                results[name].append((rps, p99, cpu_us, sys_us))
                print(f"round {r + 1} {name}: {rps:,.0f} req/s, p99 {p99:.2f} ms, server CPU {cpu_us:.1f} us/request ({sys_us:.1f} in the kernel)", flush=True)
        for name in ("A", "B"):
            rps = statistics.median(x[0] for x in results[name])
            p99 = statistics.median(x[1] for x in results[name])
            cpu = statistics.median(x[2] for x in results[name])
            kernel = statistics.median(x[3] for x in results[name])
            print(f"median {name}: {rps:,.0f} req/s, server CPU {cpu:.1f} us per request ({kernel:.1f} in the kernel), p99 {p99:.2f} ms")
        ra = statistics.median(x[0] for x in results["A"])
        rb = statistics.median(x[0] for x in results["B"])
        print(f"B/A throughput: {rb / ra:.3f}")


if __name__ == "__main__":
    main()
