#!/usr/bin/env python3
"""Tenant fairness under a flood (`bench/flood`): how much of its calm throughput a
well-behaved component keeps, and its p99, while another component of the same app is
flooded by clients that ignore `retry-after`.

The app has two components: `good` (the hello guest, on `/`) and `bad` (the hostile
guest, on `/bad/...`, with `limits = { memory = "32MiB", timeout = "200ms" }`). The flood
is three wrk processes that never back off: 8 connections of infinite loops (each runs
into the timeout), 8 of memory bombs (each hits the memory limit), 4 of traps: 20 in all.
The neighbour is one wrk on `/`, 8 connections.

Two placements, each calm vs flooded, interleaved, medians of ROUNDS rounds:
- `1 core`: the server confined to CPU 0 (one event loop), every client on CPU 1, so the
  clients never take the server's CPU. This is the verdict.
- `2 cores`: the server on both CPUs (two event loops), the clients on both too (this
  machine has no third core): for information, since the clients then compete with the
  server.

The clients' own CPU use is reported (from wait4), so a verdict decided by the load
generator shows. Environment: ROUNDS (default 5), DURATION seconds per run (default 5),
ATOLL (the binary, default target/release/atoll). Writes target/bench/flood.md and
flood.json.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import OUT, GUESTS, REL, Server, status_of, to_ms, log  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "5"))
DURATION = int(os.environ.get("DURATION", "5"))
ATOLL = os.environ.get("ATOLL") or str(REL / "atoll")
CPUS = os.sched_getaffinity(0)

# Counts the statuses a wrk thread sees (one thread per wrk here).
STATUS_LUA = """
counts = {}
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for _, s in ipairs({200, 500, 503, 504}) do
      io.write(string.format("status %d %d\\n", s, t:get("counts")[s] or 0))
    end
  end
end
"""


def spawn_wrk(cpus, url, conns, duration, script=None):
    cmd = ["taskset", "-c", cpus, "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(url)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_wrk(p):
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    statuses = {int(s): int(n) for s, n in re.findall(r"^status (\d+) (\d+)", out, re.M)}
    errs = re.search(r"Socket errors: .*", out)
    return {
        "rps": float(m.group(1)) if m else 0.0,
        "p50_ms": to_ms(lat["50"]) if "50" in lat else float("nan"),
        "p99_ms": to_ms(lat["99"]) if "99" in lat else float("nan"),
        "statuses": statuses,
        "socket_errors": errs.group(0) if errs else "",
        "client_cpu_s": cpu,
    }


def steal_ticks():
    """The machine's stolen CPU ticks so far (/proc/stat): time the hypervisor gave to
    someone else. A round with steal says its numbers were decided by the host."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) if len(fields) > 8 else 0


def timed(s, p):
    """Finish wrk `p`, adding the server's CPU per neighbour request (µs) and the steal
    seen meanwhile (% of the run's wall time, over all CPUs)."""
    cpu0, steal0, t0 = s.cpu_s(), steal_ticks(), time.time()
    r = finish_wrk(p)
    wall = time.time() - t0
    r["server_cpu_us_per_req"] = (s.cpu_s() - cpu0) * 1e6 / max(r["rps"] * wall, 1)
    r["steal_pct"] = 100 * (steal_ticks() - steal0) / os.sysconf("SC_CLK_TCK") / max(wall * len(CPUS), 1e-9)
    return r


def run_placement(name, server_cpus, client_cpus, app, env):
    log(f"== {name}: server on CPU {server_cpus}, clients on CPU {client_cpus}")
    s = Server(f"flood-{name.replace(' ', '')}", ["taskset", "-c", server_cpus, ATOLL, "up", str(app), "--listen", "127.0.0.1:{PORT}"], env)
    rows = {"calm": [], "flooded": []}
    script = OUT / "flood-status.lua"
    script.write_text(STATUS_LUA)
    hostile = {}
    try:
        s.wait_ready()
        assert status_of(s.port, "/bad/ok") == 200, "the hostile component does not answer /bad/ok"
        finish_wrk(spawn_wrk(client_cpus, s.url("/"), 8, 1))
        for r in range(ROUNDS):
            calm = timed(s, spawn_wrk(client_cpus, s.url("/"), 8, DURATION))
            rows["calm"].append(calm)
            flood = [
                spawn_wrk(client_cpus, s.url("/bad/loop"), 8, DURATION + 2, script),
                spawn_wrk(client_cpus, s.url("/bad/alloc"), 8, DURATION + 2, script),
                spawn_wrk(client_cpus, s.url("/bad/trap"), 4, DURATION + 2, script),
            ]
            time.sleep(1)
            good = timed(s, spawn_wrk(client_cpus, s.url("/"), 8, DURATION))
            bad = [finish_wrk(p) for p in flood]
            good["flood_client_cpu_s"] = sum(b["client_cpu_s"] for b in bad)
            good["ratio"] = good["rps"] / max(calm["rps"], 1)
            rows["flooded"].append(good)
            for kind, b in zip(["loop", "alloc", "trap"], bad):
                h = hostile.setdefault(kind, {})
                for st, n in b["statuses"].items():
                    h[st] = h.get(st, 0) + n
            log(f"  round {r + 1}: calm {calm['rps']:.0f} req/s p99 {calm['p99_ms']:.2f} ms; "
                f"flooded {good['rps']:.0f} req/s p99 {good['p99_ms']:.2f} ms "
                f"({100 * good['ratio']:.0f}%), flood clients used {good['flood_client_cpu_s']:.2f} s CPU; "
                f"server CPU per neighbour request {calm['server_cpu_us_per_req']:.1f} vs {good['server_cpu_us_per_req']:.1f} us; "
                f"steal {calm['steal_pct']:.0f}% / {good['steal_pct']:.0f}%")
            if s.proc.poll() is not None:
                raise RuntimeError(f"the server died during the flood; see {s.log.name}")
        alive = status_of(s.port, "/") == 200
        peak = s.status_mib("VmHWM")
    finally:
        s.stop()
    med = lambda xs: statistics.median(xs)  # noqa: E731
    calm_rps = med([x["rps"] for x in rows["calm"]])
    flood_rps = med([x["rps"] for x in rows["flooded"]])
    result = {
        "placement": name,
        "calm_rps": calm_rps,
        "calm_p99_ms": med([x["p99_ms"] for x in rows["calm"]]),
        "flooded_rps": flood_rps,
        "flooded_p99_ms": med([x["p99_ms"] for x in rows["flooded"]]),
        "share": flood_rps / calm_rps if calm_rps else 0.0,
        "round_ratio_median": med([x["ratio"] for x in rows["flooded"]]),
        "round_ratio_range": [min(x["ratio"] for x in rows["flooded"]), max(x["ratio"] for x in rows["flooded"])],
        "calm_cpu_us": med([x["server_cpu_us_per_req"] for x in rows["calm"]]),
        "flooded_cpu_us": med([x["server_cpu_us_per_req"] for x in rows["flooded"]]),
        "steal_pct": med([x["steal_pct"] for x in rows["calm"] + rows["flooded"]]),
        "flood_client_cpu_s": med([x["flood_client_cpu_s"] for x in rows["flooded"]]),
        "hostile_statuses": hostile,
        "peak_rss_mib": peak,
        "alive_after": alive,
        "rounds": rows,
    }
    log(f"  {name}: neighbour keeps {100 * result['share']:.1f}% ({flood_rps:.0f} vs {calm_rps:.0f} req/s), "
        f"p99 flooded {result['flooded_p99_ms']:.2f} ms, peak RSS {peak} MiB, hostile statuses {hostile}")
    return result


def make_app():
    """The two-component app of the flood, under target/bench/apps/flood."""
    app = OUT / "apps" / "flood"
    if app.exists():
        shutil.rmtree(app)
    app.mkdir(parents=True)
    (app / "atoll.toml").write_text(
        '[app]\nname = "flood"\n\n'
        f'[component.good]\nsource = "{GUESTS / "hello.wasm"}"\n\n'
        f'[component.bad]\nsource = "{GUESTS / "hostile.wasm"}"\n'
        'limits = { memory = "32MiB", timeout = "200ms" }\n\n'
        '[[trigger.http]]\nroute = "/bad/..."\ncomponent = "bad"\n\n'
        '[[trigger.http]]\nroute = "/..."\ncomponent = "good"\n'
    )
    return app


def split_cpus():
    """The server's CPU and the clients' CPU, or None on a machine with one."""
    if len(CPUS) < 2:
        return None
    first, second = sorted(CPUS)[:2]
    return str(first), str(second)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    app = make_app()
    env = {"ATOLL_HOME": str(OUT / "home"), "ATOLL_LOG": "warn"}
    cpus = split_cpus()
    if cpus is None:
        sys.exit("bench/flood needs at least 2 CPUs: the server on one, the clients on another")
    first, second = cpus
    results = [
        run_placement("1 core", first, second, app, env),
        run_placement("2 cores", f"{first},{second}", f"{first},{second}", app, env),
    ]
    lines = [
        "# Tenant fairness under a flood",
        "",
        f"{ROUNDS} rounds of {DURATION} s, calm and flooded interleaved, medians. Neighbour: wrk -c8 on `/` (hello).",
        "Flood (clients that ignore retry-after): 8 connections of infinite loops, 8 of memory bombs, 4 of traps,",
        "against a component limited to 32 MiB and 200 ms. Goal: the neighbour keeps >= 90% of its calm throughput",
        "and its p99 stays under 5 ms.",
        "",
        "| placement | calm req/s | flooded req/s | kept (medians) | kept, median of rounds (range) | calm p99 | flooded p99 | server CPU per neighbour request, calm / flooded | peak RSS | flood clients' CPU per run | steal | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ok = r["share"] >= 0.9 and r["flooded_p99_ms"] < 5.0
        lines.append(
            f"| {r['placement']} | {r['calm_rps']:,.0f} | {r['flooded_rps']:,.0f} | {100 * r['share']:.1f}% | "
            f"{100 * r['round_ratio_median']:.0f}% ({100 * r['round_ratio_range'][0]:.0f}-{100 * r['round_ratio_range'][1]:.0f}%) | "
            f"{r['calm_p99_ms']:.2f} ms | {r['flooded_p99_ms']:.2f} ms | {r['calm_cpu_us']:.1f} / {r['flooded_cpu_us']:.1f} us | "
            f"{r['peak_rss_mib']:.0f} MiB | {r['flood_client_cpu_s']:.2f} s | {r['steal_pct']:.0f}% | {'met' if ok else 'MISSED'} |")
    lines.append("")
    for r in results:
        lines.append(f"Hostile statuses, {r['placement']} (all rounds): {json.dumps(r['hostile_statuses'])}; "
                     f"server answering after the flood: {r['alive_after']}.")
    lines.append("")
    lines.append("1 core: server on CPU 0, clients on CPU 1 (the verdict). 2 cores: server and clients share both CPUs "
                 "(this machine has two), for information.")
    (OUT / "flood.md").write_text("\n".join(lines) + "\n")
    (OUT / "flood.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
