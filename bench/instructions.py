#!/usr/bin/env python3
"""`make bench-instructions`: instructions per request under callgrind, and where they go.

CPU time per request (`make bench`) moves by 10-30 % between rounds on a 2-core machine;
instruction counts do not: callgrind counts the same for the same binary and requests,
whatever else runs. This runs the pingora floor and sso-sidecar (one worker thread each)
under `valgrind --tool=callgrind` in front of nginx, warms each up, zeroes the counters,
sends REQUESTS requests on one keep-alive connection, dumps the counters and reports
instructions per request (user space only; the kernel's share is not counted) with the
functions that cost the most, inclusive of what they call. Targets: the public route, an
authenticated route with a session minted by examples/mint_sessions (a local IdP, so no
provider is needed), and the same with JSON access logs on.

Writes bench/results/instructions.txt. Environment: BENCH_REQUESTS (default 2000).
"""
import http.client
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (the shared helpers of make bench)

ROOT = bench.ROOT
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "2000"))
TOP = 25


def main():
    for tool in ["valgrind", "callgrind_control", "callgrind_annotate", "nginx"]:
        if not bench.shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"bench-instructions: {tool} is missing (make bench installs it)")
    return bench.in_scratch_dir("sso-instr-", run)


def run(tmp):
    upstream_port = bench.free_port()
    bench.start_nginx(tmp, upstream_port)
    cookie = minted_cookie()
    results = []
    floor_port = bench.free_port()
    floor = under_callgrind(tmp, "pingora_floor", [
        os.path.join(ROOT, "target/release/examples/pingora_floor"),
        f"127.0.0.1:{floor_port}", f"127.0.0.1:{upstream_port}", "1"])
    results.append(measure(tmp, "pingora_floor", floor, floor_port, "/public/", None))
    for logs in (False, True):
        port, admin = bench.free_port(), bench.free_port()
        name = "sidecar_json_logs" if logs else "sidecar"
        conf = sidecar_config(tmp, name, port, admin, upstream_port, logs)
        sidecar = under_callgrind(tmp, name, [
            os.path.join(ROOT, "target/release/sso-sidecar"), "run", "-c", conf])
        if not logs:
            results.append(measure(tmp, "sidecar_public", sidecar, port, "/public/", None))
        results.append(measure(tmp, f"{name}_authenticated", sidecar, port, "/account/", cookie))
    report(results)


def minted_cookie():
    out = subprocess.run([os.path.join(ROOT, "target/release/examples/mint_sessions"),
                          bench.SESSION_KEY, "1", "Bench", "local"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[0]


def sidecar_config(tmp, name, port, admin, upstream_port, logs):
    path = os.path.join(tmp, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
upstream = "http://127.0.0.1:{upstream_port}"
public_url = "http://127.0.0.1:{port}"
threads = 1
[admin]
listen = "127.0.0.1:{admin}"
[session]
keys = ["{bench.SESSION_KEY}"]
secure = false
[log]
level = "{'info' if logs else 'warn'}"
format = "{'json' if logs else 'text'}"
[organizations.Bench]
external_name = "Bench"
identity_providers = ["local"]
local_login_url = "/login"
[[routes]]
path_prefix = "/login"
auth = "public"
[[routes]]
path_prefix = "/public/"
auth = "public"
[[routes]]
path_prefix = "/"
auth = "required"
""")
    return path


def under_callgrind(tmp, name, cmd):
    out = os.path.join(tmp, f"callgrind.{name}.out")
    proc = bench.start(name, ["valgrind", "--tool=callgrind", "--collect-atstart=yes",
                              f"--callgrind-out-file={out}", *cmd], tmp)
    proc.callgrind_out = out
    return proc


def measure(tmp, name, proc, port, path, cookie):
    headers = {"Cookie": cookie} if cookie else {}
    conn = wait_ready(port, path, headers)
    for _ in range(200):  # warm-up: caches, pools, lazy statics
        get(conn, path, headers)
    ctl(proc, "--zero")
    started = time.time()
    for _ in range(REQUESTS):
        get(conn, path, headers)
    elapsed = time.time() - started
    ctl(proc, "--dump")
    conn.close()
    dump = latest_dump(proc.callgrind_out)
    total, top = annotate(dump)
    print(f"{name}: {total / REQUESTS:,.0f} instructions/request ({REQUESTS} requests, {elapsed:.1f} s under callgrind)")
    return {"name": name, "per_request": total / REQUESTS, "top": top}


def wait_ready(port, path, headers, timeout=120):
    deadline = time.time() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            get(conn, path, headers)
            return conn
        except (OSError, http.client.HTTPException, AssertionError):
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def get(conn, path, headers):
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    assert response.status == 200, f"{path} answered {response.status}"


def ctl(proc, action):
    subprocess.run(["callgrind_control", action, str(proc.pid)], check=True,
                   capture_output=True)


def latest_dump(base):
    folder, prefix = os.path.split(base)
    dumps = [os.path.join(folder, f) for f in os.listdir(folder)
             if f.startswith(prefix + ".") and f[len(prefix) + 1:].split("-")[0].isdigit()]
    return max(dumps, key=os.path.getmtime)


def annotate(dump):
    """The dump's total and its costliest functions of the sidecar's own and the libraries
    (inclusive: with what they call), below the runtime's frames that hold everything."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", dump],
                         check=True, capture_output=True, text=True).stdout
    total = 0
    top = []
    line_re = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$")
    for line in out.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        count, where = int(m.group(1).replace(",", "")), m.group(2)
        if where.endswith("PROGRAM TOTALS"):
            total = count
            continue
        function = re.sub(r" \[[^]]*\]$", "", where.split(":", 1)[-1])
        if count < total * 0.9 and len(top) < TOP and not any(f == function for _, f in top):
            top.append((count, function))
    return total, top


def report(results):
    floor = next(r for r in results if r["name"] == "pingora_floor")["per_request"]
    lines = ["Instructions per request under callgrind (user space), one keep-alive connection.", ""]
    for r in results:
        lines.append(f"{r['name']:40} {r['per_request']:>10,.0f}  {r['per_request'] / floor:5.2f}x floor")
    lines += ["", "Issue 34's targets:"]
    by = {r["name"]: r["per_request"] for r in results}
    for label, value, target, met in [
        ("floor", f"{floor:,.0f}", "<= 85,000", floor <= 85_000),
        ("public / floor", f"{by['sidecar_public'] / floor:.3f}", "<= 1.10",
         by["sidecar_public"] <= 1.10 * floor),
        ("authenticated / floor", f"{by['sidecar_authenticated'] / floor:.3f}", "<= 1.25",
         by["sidecar_authenticated"] <= 1.25 * floor),
    ]:
        lines.append(f"  {label:24} {value:>10}  target {target:10} {'met' if met else 'not met'}")
    for r in results:
        lines += ["", f"## {r['name']}: inclusive instructions per request", ""]
        for count, where in r["top"]:
            lines.append(f"{count / REQUESTS:>10,.0f}  {where[:150]}")
    bench.write_result("instructions.txt", lines)


if __name__ == "__main__":
    sys.exit(main())
