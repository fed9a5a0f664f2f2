#!/usr/bin/env python3
"""`make bench`: sso-sidecar side by side with the plain upstream and Apache mod_auth_openidc.

Starts a real OpenID provider (idp/provider.mjs), nginx as a fast upstream, sso-sidecar
(release build, and a second one with JSON access logs on) and Apache with
mod_auth_openidc in front of the same nginx, plus two references: nginx as a plain reverse
proxy and the pingora floor (examples/pingora_floor.rs). Signs in to both through the
provider's pages, then runs wrk with the same settings against each target, checks every
status code wrk saw and reports the CPU time each target's processes spent per request.
Last, RSS per 1,000 idle keep-alive connections. Writes bench/results/latest.csv and latest.svg, updates
the table in docs/src/development/benchmarks.md, and stops everything it started. Standard library only.

Environment: BENCH_DURATION (default 10s), BENCH_WARMUP (2s), BENCH_THREADS (2),
BENCH_CONNECTIONS (50), BENCH_ROUNDS (3: rounds of the runs the ratios compare),
BENCH_IDLE_CONNECTIONS (3000).
"""
import base64
import datetime
import http.cookiejar
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
DURATION = os.environ.get("BENCH_DURATION", "10s")
WARMUP = os.environ.get("BENCH_WARMUP", "2s")
THREADS = os.environ.get("BENCH_THREADS", "2")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "50")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SESSION_KEY = base64.b64encode(os.urandom(32)).decode()
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, cmd, tmp, env=None, stdout=None):
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    proc = subprocess.Popen(cmd, stdout=stdout or log, stderr=log, env={**os.environ, **(env or {})},
                            start_new_session=True)
    PROCS.append((name, proc))
    return proc


def stop_all():
    for name, proc in reversed(PROCS):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for name, proc in PROCS:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not come up")


def start_idp(tmp, settings):
    """The real OpenID provider (idp/provider.mjs); returns its issuer."""
    idp = start("idp", ["node", os.path.join(ROOT, "idp/provider.mjs")], tmp,
                env={"IDP_CONFIG": json.dumps(settings)}, stdout=subprocess.PIPE)
    return json.loads(idp.stdout.readline())["issuer"]


def start_nginx(tmp, port):
    """The upstream: nginx answering a small page."""
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port};
    location / {{ default_type text/plain; return 200 "hello from the shop\\n"; }} }} }}
""")
    proc = start("nginx", ["nginx", "-c", conf, "-p", tmp], tmp)
    wait_http(f"http://127.0.0.1:{port}/")
    return proc


def start_nginx_proxy(tmp, port, upstream_port):
    """Reference: nginx as a plain reverse proxy in front of the same upstream (2 workers,
    upstream keepalive), what a proxy costs with no logic in C."""
    root = os.path.join(tmp, "nginx-proxy")
    os.makedirs(root, exist_ok=True)
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 2; daemon off; pid {root}/nginx.pid; error_log {root}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream shop {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://shop; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    proc = start("nginx_proxy", ["nginx", "-c", conf, "-p", root], tmp)
    wait_http(f"http://127.0.0.1:{port}/")
    return proc


def start_nginx_forward_auth(tmp, port, sidecar_port, upstream_port):
    """nginx in front of the same upstream asking the sidecar about each request with
    `auth_request`: the shipped examples/forward-auth/nginx.conf, 2 workers."""
    root = os.path.join(tmp, "nginx-forward-auth")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(ROOT, "examples/forward-auth/nginx.conf")) as f:
        server = (f.read().replace("SHOP_LISTEN", f"127.0.0.1:{port}")
                  .replace("SIDECAR", "sidecar").replace("UPSTREAM", "shop"))
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 2; daemon off; pid {root}/nginx.pid; error_log {root}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream sidecar {{ server 127.0.0.1:{sidecar_port}; keepalive 64; }}
  upstream shop {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  proxy_http_version 1.1;
  {server.replace("proxy_pass http://sidecar;", 'proxy_pass http://sidecar; proxy_set_header Connection "";')}
}}
""")
    proc = start("nginx_forward_auth", ["nginx", "-c", conf, "-p", root], tmp)
    wait_http(f"http://127.0.0.1:{port}/public/page")
    return proc


def write_sidecar_config(tmp, port, admin_port, upstream_port, issuer, org, oidc="", tail=""):
    """The sidecar's config: one IdP `azure` (client `sidecar`), one organization, `tail`
    right after the IdP table (more IdP keys, more tables, routes), then `/` required."""
    path = os.path.join(tmp, "sidecar.toml")
    threads = os.environ.get("BENCH_SIDECAR_THREADS")
    with open(path, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
upstream = "http://127.0.0.1:{upstream_port}"
public_url = "http://127.0.0.1:{port}"
# nginx with auth_request on loopback asks /oauth2/auth (the forward-auth run).
trusted_proxies = ["127.0.0.1/32"]
{f"threads = {int(threads)}" if threads else ""}
[admin]
listen = "127.0.0.1:{admin_port}"
[oidc]
remote = "supported"
{oidc}
[session]
keys = ["{SESSION_KEY}"]
secure = false
[log]
level = "warn"
[organizations.{org}]
external_name = "{org}"
identity_providers = ["azure"]
[identity_providers.azure]
type = "oidc"
name = "Azure AD"
issuer = "{issuer}"
client_id = "sidecar"
client_secret = "sidecar-secret"
{tail.strip()}
[[routes]]
path_prefix = "/"
auth = "required"
""")
    return path


def wait_sidecar_ready(admin_port, idp):
    """Until the sidecar answers and has discovered `idp`."""
    wait_http(f"http://127.0.0.1:{admin_port}/healthz")
    for _ in range(100):
        ready = json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz"))
        if ready["identity_providers"][idp]["state"] == "ready":
            return
        time.sleep(0.1)
    raise SystemExit(f"bench: the sidecar did not discover {idp}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


class Browser:
    """Cookies kept, redirects followed one by one, IdP forms submitted."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def request(self, url, data=None):
        req = urllib.request.Request(url, data=data, headers={"Accept": "text/html"})
        try:
            r = self.opener.open(req, timeout=15)
            return r.status, r.headers, r.read().decode("utf-8", "replace"), r.geturl()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode("utf-8", "replace"), url

    def sign_in(self, url, user, idp_origin):
        data = None
        for _ in range(30):
            status, headers, body, _ = self.request(url, data)
            data = None
            if 300 <= status < 400:
                url = urllib.parse.urljoin(url, headers["Location"])
                continue
            form = re.search(r'<form[^>]*action="([^"]*)"', body)
            if status == 200 and form and url.startswith(idp_origin):
                fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body))
                if 'name="login"' in body:
                    fields.update({"login": user, "password": "bench"})
                data = urllib.parse.urlencode(fields).encode()
                url = urllib.parse.urljoin(url, form.group(1).replace("&amp;", "&"))
                continue
            return status, body
        raise SystemExit("bench: sign-in did not finish")

    def cookie_header(self, prefix):
        return "; ".join(f"{c.name}={c.value}" for c in self.jar if c.name.startswith(prefix))


WRK_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do io.write(string.format("STATUS %d %d\\n", code, n)) end
  end
end
"""


PROFILE_PID = None  # with BENCH_PROFILE=1: the sidecar, recorded with perf during its runs


def wrk(name, url, expect, tmp, pid, headers=(), method=None, body=None):
    """One wrk run against `url`; `pid` is the target's process (tree) whose CPU time per
    completed request is reported."""
    script = os.path.join(tmp, f"{name}.lua")
    with open(script, "w") as f:
        if method:
            f.write(f'wrk.method = "{method}"\n')
        if body:
            f.write(f"wrk.body = {json.dumps(body)}\n")
        for k, v in headers:
            f.write(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n")
        f.write(WRK_LUA)
    base = ["wrk", "-t", THREADS, "-c", CONNECTIONS, "--latency", "-s", script]
    subprocess.run(base + ["-d", WARMUP, url], capture_output=True, check=True)
    perf = None
    if PROFILE_PID and name.startswith("sidecar"):
        data = os.path.join(RESULTS, f"perf-{name}.data")
        os.makedirs(RESULTS, exist_ok=True)
        perf = subprocess.Popen(["perf", "record", "-F", "999", "-e", "cpu-clock", "-g", "-o", data, "-p", str(PROFILE_PID)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(base + ["-d", DURATION, url], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--percent-limit", "1.5"],
                                capture_output=True, text=True).stdout
        with open(os.path.join(RESULTS, f"profile-{name}.txt"), "w") as f:
            f.write(report)
    statuses = {int(c): int(n) for c, n in re.findall(r"STATUS (\d+) (\d+)", out)}
    wrong = {c: n for c, n in statuses.items() if c != expect}
    if not statuses or wrong:
        raise SystemExit(f"bench: {name}: expected only {expect}, got {statuses}\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: to_ms(v, u) for p, v, u in re.findall(r"\s(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\b", out)}
    requests = sum(statuses.values())
    return {"name": name, "rps": rps, "p50": latency["50"], "p99": latency["99"], "requests": requests,
            "cpu_us": cpu * 1e6 / requests}


def median_round(results):
    """The round with the median CPU per request, with every round's figures kept."""
    ordered = sorted(results, key=lambda r: r["cpu_us"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rounds"] = [round(r["rps"]) for r in results]
    chosen["cpu_rounds"] = [round(r["cpu_us"], 1) for r in results]
    return chosen


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def in_scratch_dir(prefix, body):
    """Runs `body(tmp)` in a fresh directory; on failure prints the tails of the logs of
    everything started there. Stops everything it started either way."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        return body(tmp)
    except BaseException:
        for name in sorted(os.listdir(tmp)):
            if name.endswith(".log"):
                print(f"--- {name}", file=sys.stderr)
                print(open(os.path.join(tmp, name)).read()[-2000:], file=sys.stderr)
        raise
    finally:
        stop_all()


def main():
    for tool in ["wrk", "nginx", "apache2", "node"]:
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"bench: {tool} is missing (make bench installs it)")
    return in_scratch_dir("sso-bench-", run)


def run(tmp):
    nginx_port, sidecar_port, admin_port, apache_port = (free_port() for _ in range(4))
    proxy_port, floor_port, logs_port, logs_admin_port = (free_port() for _ in range(4))
    forward_auth_port = free_port()

    # The provider: Azure-shaped tokens (JWT access tokens with oid and groups).
    groups = [f"shop-group-{i:02d}" for i in range(20)]
    idp_settings = {
        "azure": True, "issuerPath": "/tenant/v2.0", "jwtAccessTokens": "api://bench",
        "users": {"bench": {"groups": groups}},
        "clients": [
            {"client_id": "sidecar", "client_secret": "sidecar-secret",
             "redirect_uris": [f"http://127.0.0.1:{sidecar_port}/oauth2/callback"]},
            {"client_id": "apache", "client_secret": "apache-secret",
             "redirect_uris": [f"http://127.0.0.1:{apache_port}/redirect_uri"]},
        ],
    }
    issuer = start_idp(tmp, idp_settings)
    nginx = start_nginx(tmp, nginx_port)
    nginx_proxy = start_nginx_proxy(tmp, proxy_port, nginx_port)

    # sso-sidecar.
    sidecar_conf = write_sidecar_config(tmp, sidecar_port, admin_port, nginx_port, issuer, org="Bench", tail="""
audiences = ["api://bench"]
[limits]
max_connections_per_client = 100000
[commercetools]
client_id = "ct"
client_secret = "ct-secret"
project_key = "bench"
[[routes]]
path_prefix = "/public/"
auth = "public"
[[routes]]
path_prefix = "/api/"
auth = "api"
""")
    sidecar = start("sidecar", [os.path.join(ROOT, "target/release/sso-sidecar"), "run", "-c", sidecar_conf], tmp)
    if os.environ.get("BENCH_PROFILE") == "1":
        global PROFILE_PID
        PROFILE_PID = sidecar.pid
    wait_sidecar_ready(admin_port, "azure")
    # The same sidecar with JSON access logs on, written to a file (what operators run).
    with open(sidecar_conf) as f:
        logged = f.read()
    logged = (logged.replace(f"127.0.0.1:{sidecar_port}", f"127.0.0.1:{logs_port}")
              .replace(f"127.0.0.1:{admin_port}", f"127.0.0.1:{logs_admin_port}")
              .replace('level = "warn"', 'level = "info"\nformat = "json"'))
    logged_conf = os.path.join(tmp, "sidecar-logs.toml")
    with open(logged_conf, "w") as f:
        f.write(logged)
    sidecar_logged = start("sidecar_logs", [os.path.join(ROOT, "target/release/sso-sidecar"), "run", "-c", logged_conf], tmp)
    wait_sidecar_ready(logs_admin_port, "azure")
    # Reference: pingora with no logic of its own, same threads and listener settings.
    threads = os.environ.get("BENCH_SIDECAR_THREADS") or str(os.cpu_count())
    floor = start("pingora_floor", [os.path.join(ROOT, "target/release/examples/pingora_floor"),
                                    f"127.0.0.1:{floor_port}", f"127.0.0.1:{nginx_port}", threads], tmp)
    wait_http(f"http://127.0.0.1:{floor_port}/")
    start_nginx_forward_auth(tmp, forward_auth_port, sidecar_port, nginx_port)

    # Apache with mod_auth_openidc, client-side cookie sessions, same provider and upstream.
    apache_conf = os.path.join(tmp, "apache.conf")
    apache_pid_file = os.path.join(tmp, "apache.pid")
    modules = "/usr/lib/apache2/modules"
    with open(apache_conf, "w") as f:
        f.write(f"""ServerRoot /etc/apache2
ServerName 127.0.0.1
Listen 127.0.0.1:{apache_port}
PidFile {tmp}/apache.pid
ErrorLog {tmp}/apache-error.log
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so
LoadModule proxy_module {modules}/mod_proxy.so
LoadModule proxy_http_module {modules}/mod_proxy_http.so
OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID apache
OIDCClientSecret apache-secret
OIDCRedirectURI http://127.0.0.1:{apache_port}/redirect_uri
OIDCCryptoPassphrase {SESSION_KEY}
OIDCSessionType client-cookie
OIDCPKCEMethod S256
OIDCScope "openid email profile offline_access"
OIDCCookieSameSite On
<Location />
  AuthType openid-connect
  Require valid-user
  ProxyPass http://127.0.0.1:{nginx_port}/ keepalive=On
</Location>
""")
    apache = start("apache", ["apache2", "-f", apache_conf, "-DFOREGROUND"], tmp,
                   env={"APACHE_RUN_DIR": tmp, "APACHE_LOCK_DIR": tmp, "APACHE_LOG_DIR": tmp})
    wait_http(f"http://127.0.0.1:{apache_port}/")

    # Sign in to both through the provider's pages.
    browser = Browser()
    idp_origin = f"http://127.0.0.1:{idp_port_of(issuer)}"
    status, _ = browser.sign_in(f"http://127.0.0.1:{sidecar_port}/account/", "bench", idp_origin)
    assert status == 200, f"sidecar sign-in ended with {status}"
    sidecar_cookie = browser.cookie_header("_sso_session")
    status, _ = browser.sign_in(f"http://127.0.0.1:{apache_port}/account/", "bench", idp_origin)
    assert status == 200, f"mod_auth_openidc sign-in ended with {status}"
    apache_cookie = browser.cookie_header("mod_auth_openidc_session")
    assert sidecar_cookie and apache_cookie, f"both sign-ins left a session cookie: {[c.name for c in browser.jar]}"

    # A bearer JWT for the API route, signed by the provider for this audience.
    now = int(time.time())
    req = urllib.request.Request(f"http://127.0.0.1:{idp_port_of(issuer)}/_test/sign", method="POST",
                                 data=json.dumps({"claims": {"sub": "bench", "aud": "api://bench", "exp": now + 3600,
                                                             "oid": "0b7e4a52-bench", "groups": groups}}).encode())
    api_token = json.load(urllib.request.urlopen(req))["token"]
    ct_auth = "Basic " + base64.b64encode(b"ct:ct-secret").decode()
    answer = json.load(urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{sidecar_port}/oauth2/introspect", data=urllib.parse.urlencode({"token": api_token}).encode(),
        headers={"Authorization": ct_auth})))
    assert answer["active"], answer

    sc = f"http://127.0.0.1:{sidecar_port}"
    ap = f"http://127.0.0.1:{apache_port}"
    # The three runs the ratios compare are repeated in interleaved rounds and each reports
    # its median round: on two cores shared by everything, one round can be 20 % off.
    lg = f"http://127.0.0.1:{logs_port}"
    # The runs the ratios compare are repeated in interleaved rounds and each reports its
    # median round: on two cores shared by everything, one round can be 20 % off.
    compared = {
        "pingora_floor": (f"http://127.0.0.1:{floor_port}/public/page", [], floor.pid),
        # A signed-in browser sends its session cookie to public pages too (Path=/), so the
        # public run carries it as well: the two runs differ only in what authentication does.
        "sidecar_public": (f"{sc}/public/page", [("Cookie", sidecar_cookie)], sidecar.pid),
        "sidecar_authenticated": (f"{sc}/account/page", [("Cookie", sidecar_cookie)], sidecar.pid),
        "sidecar_authenticated_json_logs": (f"{lg}/account/page", [("Cookie", sidecar_cookie)], sidecar_logged.pid),
        # The sidecar's CPU per auth_request subrequest (nginx's own is not counted).
        "sidecar_forward_auth_nginx": (f"http://127.0.0.1:{forward_auth_port}/account/page",
                                       [("Cookie", sidecar_cookie)], sidecar.pid),
        "mod_auth_openidc_authenticated": (f"{ap}/account/page", [("Cookie", apache_cookie)], apache.pid),
    }
    rounds = {name: [] for name in compared}
    for _ in range(ROUNDS):
        for name, (url, headers, pid) in compared.items():
            rounds[name].append(wrk(name, url, 200, tmp, pid, headers=headers))
    median = {name: median_round(results) for name, results in rounds.items()}
    runs = [
        wrk("upstream_direct", f"http://127.0.0.1:{nginx_port}/", 200, tmp, nginx.pid),
        wrk("nginx_proxy", f"http://127.0.0.1:{proxy_port}/public/page", 200, tmp, nginx_proxy.pid),
        median["pingora_floor"],
        median["sidecar_public"],
        median["sidecar_authenticated"],
        median["sidecar_authenticated_json_logs"],
        median["sidecar_forward_auth_nginx"],
        wrk("sidecar_no_cookie", f"{sc}/account/page", 302, tmp, sidecar.pid, headers=[("Accept", "text/html")]),
        wrk("sidecar_api_bearer_jwt", f"{sc}/api/orders", 200, tmp, sidecar.pid,
            headers=[("Authorization", f"Bearer {api_token}")]),
        wrk("sidecar_introspect", f"{sc}/oauth2/introspect", 200, tmp, sidecar.pid, method="POST",
            body=urllib.parse.urlencode({"token": api_token}),
            headers=[("Authorization", ct_auth), ("Content-Type", "application/x-www-form-urlencoded")]),
        median["mod_auth_openidc_authenticated"],
        wrk("mod_auth_openidc_no_cookie", f"{ap}/account/page", 302, tmp, apache.pid, headers=[("Accept", "text/html")]),
    ]
    memory = memory_run(tmp, sidecar.pid, f"{sc}/account/page")
    idle = idle_run(sidecar.pid, sidecar_port, "/public/page")
    report(runs, len(sidecar_cookie), len(apache_cookie), memory, idle)


MEMORY_SESSIONS = int(os.environ.get("BENCH_SESSIONS", "100000"))

MEMORY_LUA = """
local cookies = {}
local next_index = 1
function init(args)
  local id, count = tonumber(args[1]), tonumber(args[2])
  local n = 0
  for line in io.lines(args[3]) do
    n = n + 1
    if n % count == id then table.insert(cookies, line) end
  end
end
function request()
  local cookie = cookies[next_index]
  next_index = next_index % #cookies + 1
  return wrk.format("GET", nil, { ["Cookie"] = cookie })
end
"""


def rss_kib(pid):
    """Resident memory of the sidecar process and its threads (one process)."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(root):
    """`root` and every process below it (Apache's and nginx's workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root):
    """utime+stime of `root`'s live process tree, plus the children it already reaped."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
        utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
        total += utime + stime + (cutime + cstime if pid == root else 0)
    return total / CLOCK_TICKS


IDLE_CONNECTIONS = int(os.environ.get("BENCH_IDLE_CONNECTIONS", "3000"))


def idle_run(pid, port, path):
    """RSS per 1,000 idle keep-alive connections: each connects, asks once (as a browser
    does) and stays open."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n".encode()
    before = rss_kib(pid)
    held = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            head = s.recv(65536)
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"bench: idle run got {head[:60]!r}")
            held.append(s)
        time.sleep(1)
        after = rss_kib(pid)
    finally:
        for s in held:
            s.close()
    return {"connections": IDLE_CONNECTIONS, "rss_before_kib": before, "rss_after_kib": after,
            "mib_per_1000": (after - before) / IDLE_CONNECTIONS * 1000 / 1024}


def memory_run(tmp, pid, url):
    """Requests from BENCH_SESSIONS distinct sessions; RSS before and after."""
    cookies = os.path.join(tmp, "cookies.txt")
    with open(cookies, "w") as out:
        subprocess.run([os.path.join(ROOT, "target/release/examples/mint_sessions"), SESSION_KEY,
                        str(MEMORY_SESSIONS), "Bench", "azure"], stdout=out, check=True)
    threads = int(THREADS)
    # wrk runs init() once per thread; each thread takes every threads-th cookie.
    scripts = []
    for i in range(threads):
        path = os.path.join(tmp, f"memory-{i}.lua")
        with open(path, "w") as f:
            f.write(MEMORY_LUA.replace("function init(args)", f"function init(_)\n  local args = {{{i}, {threads}, {json.dumps(cookies)}}}"))
        scripts.append(path)
    before = rss_kib(pid)
    # Enough time for every session to be used at least once at the measured rates.
    seconds = max(10, MEMORY_SESSIONS // 8000)
    procs = [subprocess.Popen(["wrk", "-t", "1", "-c", str(int(CONNECTIONS) // threads), "-d", f"{seconds}s", "-s", script, url],
                              stdout=subprocess.PIPE, text=True) for script in scripts]
    requests = 0
    for proc in procs:
        out, _ = proc.communicate()
        requests += int(re.search(r"(\d+) requests in", out).group(1))
        if "Non-2xx" in out:
            raise SystemExit(f"bench: memory run got errors:\n{out}")
    after = rss_kib(pid)
    return {"sessions": MEMORY_SESSIONS, "requests": requests, "rss_before_kib": before, "rss_after_kib": after}


def write_result(filename, lines):
    """`lines` as bench/results/<filename>, and on stdout."""
    text = "\n".join(lines) + "\n"
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, filename), "w") as f:
        f.write(text)
    print(text)


def idp_port_of(issuer):
    return urllib.parse.urlparse(issuer).port


def report(runs, sidecar_cookie_bytes, apache_cookie_bytes, memory, idle):
    by = {r["name"]: r for r in runs}
    auth, public = by["sidecar_authenticated"], by["sidecar_public"]
    oidc, floor = by["mod_auth_openidc_authenticated"], by["pingora_floor"]
    logged = by["sidecar_authenticated_json_logs"]
    figures = [
        ("CPU per request: public / pingora floor", public["cpu_us"] / floor["cpu_us"], "<= 1.10"),
        # Issue 34's targets.
        ("CPU per request: authenticated / pingora floor", auth["cpu_us"] / floor["cpu_us"], "<= 1.25"),
        ("CPU per request: authenticated / nginx proxy_pass", auth["cpu_us"] / by["nginx_proxy"]["cpu_us"], "<= 3"),
        ("CPU per request: mod_auth_openidc / ours authenticated", oidc["cpu_us"] / auth["cpu_us"], ">= 6"),
        ("CPU per request: JSON access logs on / off (authenticated)", logged["cpu_us"] / auth["cpu_us"], "<= 1.15"),
        ("authenticated / public throughput (ours)", auth["rps"] / public["rps"], ">= 0.90"),
        ("ours / mod_auth_openidc authenticated throughput", auth["rps"] / oidc["rps"], ">= 4"),
        ("p99 added by authentication (ms)", auth["p99"] - public["p99"], "<= 0.5"),
        ("/oauth2/introspect warm p99 (ms)", by["sidecar_introspect"]["p99"], "< 5"),
        ("session cookie bytes: ours / mod_auth_openidc", sidecar_cookie_bytes / apache_cookie_bytes, "<= 1"),
        (f"RSS after {memory['sessions']} distinct sessions (MiB)", memory["rss_after_kib"] / 1024, "<= 45.4"),
        ("RSS per 1,000 idle keep-alive connections (MiB)", idle["mib_per_1000"], "<= 11.8"),
    ]
    met = [eval_target(v, t) for _, v, t in figures]
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latest.csv"), "w") as f:
        f.write("target,requests_per_second,p50_ms,p99_ms,requests,cpu_us_per_request\n")
        for r in runs:
            f.write(f"{r['name']},{r['rps']:.0f},{r['p50']:.3f},{r['p99']:.3f},{r['requests']},{r['cpu_us']:.1f}\n")
    with open(os.path.join(RESULTS, "latest.svg"), "w") as f:
        f.write(chart(runs))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Measured {date} on {machine}; wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION} after {WARMUP} warm-up, "
             "all on one machine (client, proxies and upstream share the cores).", "",
             "CPU µs/request is the user+system time of the target's own processes (all of nginx's and "
             "Apache's workers) during the run, divided by the requests wrk completed.", "",
             "| target | CPU µs/request | requests/s | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['cpu_us']:.1f} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} |" for r in runs]
    lines += ["", f"Floor, public, authenticated (logs off and on) and mod_auth_openidc runs: the round with the "
              f"median CPU per request of {ROUNDS} interleaved rounds (CPU µs/request of each round: "
              + "; ".join(f"{r['name']} {r['cpu_rounds']}" for r in runs if "cpu_rounds" in r) + ")."]
    lines += ["", "| figure | value | target | met |", "|---|---:|---|---|"]
    lines += [f"| {n} | {v:.2f} | {t} | {'yes' if m else 'no'} |" for (n, v, t), m in zip(figures, met)]
    lines += ["", f"Session cookie after the same Azure-shaped login (JWT access token with 20 groups, ID token, "
              f"refresh token): sso-sidecar {sidecar_cookie_bytes} bytes, mod_auth_openidc {apache_cookie_bytes} bytes.",
              "", f"Memory: {memory['requests']} requests from {memory['sessions']} distinct sessions (Azure-shaped, "
              f"~3.5 KB cookies); sidecar RSS {memory['rss_before_kib'] / 1024:.1f} MiB before, "
              f"{memory['rss_after_kib'] / 1024:.1f} MiB after. {idle['connections']} idle keep-alive connections "
              f"(one request each): RSS {idle['rss_before_kib'] / 1024:.1f} → {idle['rss_after_kib'] / 1024:.1f} MiB, "
              f"{idle['mib_per_1000']:.1f} MiB per 1,000 ({idle['mib_per_1000'] * 1024 / 1000:.1f} KiB each).",
              "", "![benchmark](../../../bench/results/latest.svg)"]
    table = "\n".join(lines)
    print(table)
    readme = os.path.join(ROOT, "docs", "src", "development", "benchmarks.md")
    text = open(readme).read()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        text = text[: text.index(start) + len(start)] + "\n" + table + "\n" + text[text.index(end):]
        open(readme, "w").write(text)


def eval_target(value, target):
    op, bound = target.split()
    bound = float(bound)
    return {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]


def chart(runs):
    width, bar, gap, left = 820, 26, 10, 250
    top = max(r["rps"] for r in runs)
    height = 40 + len(runs) * (bar + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             '<text x="10" y="20" font-size="14">Requests per second (higher is better); CPU µs per request</text>']
    for i, r in enumerate(runs):
        y = 35 + i * (bar + gap)
        w = (width - left - 150) * r["rps"] / top
        color = ("#0b5cad" if r["name"].startswith("sidecar") else "#c2410c" if r["name"].startswith("mod_auth")
                 else "#9ca3af")
        parts.append(f'<text x="10" y="{y + 17}">{r["name"]}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}"/>')
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 17}">{r["rps"]:.0f} · {r["cpu_us"]:.0f} µs</text>')
    parts.append("</svg>\n")
    return "\n".join(parts)


if __name__ == "__main__":
    main()
