#!/usr/bin/env python3
"""`make bench-syscalls`: system calls and context switches per request, floor and sidecar.

Part of the cost of a request is in the kernel: each system call, and each time a thread
sleeps and is woken. This runs the pingora floor and sso-sidecar (one worker thread each,
as `make bench-instructions` does) in front of nginx and counts, with `perf stat`
(`raw_syscalls:sys_enter`, `context-switches`) on the target's process, what REQUESTS
requests on one keep-alive connection cost: the public route, an authenticated route (a
minted session) and the same with JSON access logs on. The counts are of every thread of
the process (workers, the log writer, timers).

Writes bench/results/syscalls.txt. Environment: BENCH_REQUESTS (default 2000).
"""
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402
import instructions  # noqa: E402

ROOT = bench.ROOT
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "2000"))
EVENTS = "raw_syscalls:sys_enter,context-switches"


def main():
    if not bench.shutil.which("perf"):
        raise SystemExit("bench-syscalls: perf is missing (apt-get install linux-perf)")
    return bench.in_scratch_dir("sso-syscalls-", run)


def run(tmp):
    upstream_port = bench.free_port()
    bench.start_nginx(tmp, upstream_port)
    cookie = instructions.minted_cookie()
    results = []
    floor_port = bench.free_port()
    floor = bench.start("pingora_floor", [
        os.path.join(ROOT, "target/release/examples/pingora_floor"),
        f"127.0.0.1:{floor_port}", f"127.0.0.1:{upstream_port}", "1"], tmp)
    results.append(measure(tmp, "pingora_floor", floor, floor_port, "/public/", None))
    for logs in (False, True):
        port, admin = bench.free_port(), bench.free_port()
        name = "sidecar_json_logs" if logs else "sidecar"
        conf = instructions.sidecar_config(tmp, name, port, admin, upstream_port, logs)
        sidecar = bench.start(name, [
            os.path.join(ROOT, "target/release/sso-sidecar"), "run", "-c", conf], tmp)
        if not logs:
            results.append(measure(tmp, "sidecar_public", sidecar, port, "/public/", None))
        results.append(measure(tmp, f"{name}_authenticated", sidecar, port, "/account/", cookie))
    report(results)


def measure(tmp, name, proc, port, path, cookie):
    headers = {"Cookie": cookie} if cookie else {}
    conn = instructions.wait_ready(port, path, headers)
    for _ in range(200):  # warm-up
        instructions.get(conn, path, headers)
    out = os.path.join(tmp, f"perf.{name}.txt")
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", EVENTS, "-p", str(proc.pid),
                             "-o", out])
    # perf attaches asynchronously; a few requests before counting starts cost nothing.
    instructions.get(conn, path, headers)
    for _ in range(REQUESTS):
        instructions.get(conn, path, headers)
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=30)
    conn.close()
    counts = {}
    for line in open(out):
        fields = line.strip().split(",")
        if len(fields) > 2 and re.match(r"^\d+$", fields[0]):
            counts[fields[2]] = int(fields[0])
    syscalls = counts.get("raw_syscalls:sys_enter", 0) / REQUESTS
    switches = counts.get("context-switches", 0) / REQUESTS
    print(f"{name}: {syscalls:.2f} system calls, {switches:.2f} context switches per request")
    return {"name": name, "syscalls": syscalls, "switches": switches}


def report(results):
    floor = next(r for r in results if r["name"] == "pingora_floor")
    lines = [f"System calls and context switches per request (perf stat on the process, "
             f"{REQUESTS} requests on one keep-alive connection).", "",
             f"{'target':40} {'syscalls':>9} {'vs floor':>9} {'switches':>9} {'vs floor':>9}"]
    for r in results:
        lines.append(f"{r['name']:40} {r['syscalls']:9.2f} {r['syscalls'] - floor['syscalls']:+9.2f}"
                     f" {r['switches']:9.2f} {r['switches'] - floor['switches']:+9.2f}")
    bench.write_result("syscalls.txt", lines)


if __name__ == "__main__":
    sys.exit(main())
