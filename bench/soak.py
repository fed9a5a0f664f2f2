#!/usr/bin/env python3
"""`make soak`: a steady authenticated load with token refreshes, errors and RSS over time.

Starts the real OpenID provider with short-lived access tokens and rotating refresh tokens,
nginx as the upstream and sso-sidecar (release build), signs in SOAK_SESSIONS users through
the provider's pages, then keeps two client threads per session (a browser's parallel
connections, one cookie jar) requesting a protected page for SOAK_DURATION seconds. Every
refresh rotates the refresh token, so a lost single-flight or a reused token shows up as an
error. Every 10 s it prints requests, errors, refreshes and the sidecar's RSS, writes
bench/results/soak.csv and exits non-zero when there was any error or RSS grew by 5 % or
more after warm-up. Bounded and loopback only; stops everything it started.

Environment: SOAK_DURATION (seconds, default 600), SOAK_SESSIONS (10), SOAK_TOKEN_TTL
(access token lifetime in seconds, default 30), SOAK_WARMUP (seconds, default 60).
"""
import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (ROOT, RESULTS, Browser, free_port, idp_port_of, rss_kib,  # noqa: E402
                 in_scratch_dir, start, start_idp, start_nginx, wait_sidecar_ready, write_sidecar_config)

DURATION = int(os.environ.get("SOAK_DURATION", "600"))
SESSIONS = int(os.environ.get("SOAK_SESSIONS", "10"))
TOKEN_TTL = int(os.environ.get("SOAK_TOKEN_TTL", "30"))
WARMUP = int(os.environ.get("SOAK_WARMUP", str(min(60, DURATION // 5))))
INTERVAL = 10


class Jar:
    """One browser's session cookies, shared by its parallel connections."""

    def __init__(self, cookies):
        self.lock = threading.Lock()
        self.cookies = dict(cookies)

    def header(self):
        with self.lock:
            return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def update(self, set_cookies):
        with self.lock:
            for line in set_cookies:
                name, _, rest = line.partition("=")
                value = rest.split(";", 1)[0]
                if re.search(r"(?i);\s*max-age=0\b", line) or value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = {}

    def add(self, outcome):
        with self.lock:
            self.requests += 1
            if outcome != 200:
                self.errors[outcome] = self.errors.get(outcome, 0) + 1

    def snapshot(self):
        with self.lock:
            return self.requests, dict(self.errors)


def client(port, jar, counters, stop):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        try:
            conn.request("GET", "/account/page", headers={"Cookie": jar.header(), "Accept": "text/html"})
            resp = conn.getresponse()
            resp.read()
            jar.update(resp.headers.get_all("Set-Cookie") or [])
            counters.add(resp.status)
        except Exception as e:  # a dropped or refused connection is an error too
            counters.add(type(e).__name__)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()


def metric(admin_port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    values = {}
    for labels, value in re.findall(rf"^sso_sidecar_{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        values[labels] = float(value)
    return values


def main():
    return in_scratch_dir("sso-soak-", run)


def run(tmp):
    nginx_port, sidecar_port, admin_port = (free_port() for _ in range(3))
    users = [f"soak{i:02d}" for i in range(SESSIONS)]
    idp_settings = {
        "azure": True, "jwtAccessTokens": "api://soak", "rotateRefreshToken": True,
        "ttl": {"AccessToken": TOKEN_TTL, "IdToken": TOKEN_TTL, "RefreshToken": DURATION * 4},
        "users": {u: {"groups": ["soak"]} for u in users},
        "clients": [{"client_id": "sidecar", "client_secret": "sidecar-secret",
                     "redirect_uris": [f"http://127.0.0.1:{sidecar_port}/oauth2/callback"]}],
    }
    issuer = start_idp(tmp, idp_settings)
    start_nginx(tmp, nginx_port)

    # Refresh once a third of the token's life is left: every session refreshes every ~2/3 TTL.
    sidecar_conf = write_sidecar_config(tmp, sidecar_port, admin_port, nginx_port, issuer, org="Soak",
                                        oidc=f'min_access_token_lifetime_left = "{max(1, TOKEN_TTL // 3)}s"')
    sidecar = start("sidecar", [os.path.join(ROOT, "target/release/sso-sidecar"), "run", "-c", sidecar_conf], tmp)
    wait_sidecar_ready(admin_port, "azure")

    idp_origin = f"http://127.0.0.1:{idp_port_of(issuer)}"
    jars = []
    for user in users:
        browser = Browser()
        status, _ = browser.sign_in(f"http://127.0.0.1:{sidecar_port}/account/", user, idp_origin)
        assert status == 200, f"sign-in of {user} ended with {status}"
        jars.append(Jar((c.name, c.value) for c in browser.jar if c.name.startswith("_sso_session")))

    counters, stop = Counters(), threading.Event()
    threads = [threading.Thread(target=client, args=(sidecar_port, jar, counters, stop), daemon=True)
               for jar in jars for _ in range(2)]
    for t in threads:
        t.start()

    print(f"soak: {SESSIONS} sessions x 2 connections for {DURATION}s, access tokens live {TOKEN_TTL}s, "
          f"warm-up {WARMUP}s")
    print(f"{'t (s)':>6} {'requests':>9} {'req/s':>7} {'errors':>7} {'refreshes':>9} {'coalesced':>9} {'RSS MiB':>8}")
    rows, began, last_requests = [], time.time(), 0
    try:
        while (elapsed := time.time() - began) < DURATION:
            time.sleep(min(INTERVAL, DURATION - elapsed))
            requests, errors = counters.snapshot()
            refreshes = metric(admin_port, "token_refreshes_total")
            coalesced = sum(metric(admin_port, "token_refresh_coalesced_total").values())
            ok = sum(v for k, v in refreshes.items() if 'outcome="ok"' in k)
            row = {"t": round(time.time() - began), "requests": requests, "errors": sum(errors.values()),
                   "refreshes_ok": int(ok), "refreshes_failed": int(sum(refreshes.values()) - ok),
                   "coalesced": int(coalesced), "rss_kib": rss_kib(sidecar.pid)}
            rows.append(row)
            rate = (requests - last_requests) / INTERVAL
            last_requests = requests
            print(f"{row['t']:>6} {requests:>9} {rate:>7.0f} {row['errors']:>7} {row['refreshes_ok']:>9} "
                  f"{row['coalesced']:>9} {row['rss_kib'] / 1024:>8.1f}", flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)

    requests, errors = counters.snapshot()
    stats = json.load(urllib.request.urlopen(f"{idp_origin}/_test/stats"))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "soak.csv"), "w") as f:
        f.write("seconds,requests,errors,refreshes_ok,refreshes_failed,coalesced,rss_kib\n")
        for r in rows:
            f.write(f"{r['t']},{r['requests']},{r['errors']},{r['refreshes_ok']},{r['refreshes_failed']},"
                    f"{r['coalesced']},{r['rss_kib']}\n")

    after_warmup = [r for r in rows if r["t"] >= WARMUP] or rows
    base, peak, final = after_warmup[0]["rss_kib"], max(r["rss_kib"] for r in after_warmup), rows[-1]["rss_kib"]
    growth = (final - base) / base * 100
    print(f"\nsoak: {requests} requests, errors {errors or 0}, refreshes ok {rows[-1]['refreshes_ok']} "
          f"failed {rows[-1]['refreshes_failed']}, coalesced {rows[-1]['coalesced']}; provider grants {stats}")
    print(f"soak: RSS after warm-up {base / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
          f"end {final / 1024:.1f} MiB: growth {growth:+.1f} % (target < 5 %)")
    failed = []
    if errors:
        failed.append(f"{sum(errors.values())} errors {errors}")
    if rows[-1]["refreshes_ok"] == 0:
        failed.append("no refresh happened")
    if rows[-1]["refreshes_failed"]:
        failed.append(f"{rows[-1]['refreshes_failed']} failed refreshes")
    if growth >= 5:
        failed.append(f"RSS grew {growth:.1f} %")
    if failed:
        print("soak: FAILED: " + "; ".join(failed))
        return 1
    print("soak: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
