#!/usr/bin/env bash
# Starts the demo: the demo shop backend and the sidecar (release build) with
# conf/demo.toml, in the background; state and logs live in .demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .demo
scripts/demo-stop.sh >/dev/null 2>&1 || true

bin=target/release/sso-sidecar
[ -f .demo/session.key ] || "$bin" keygen > .demo/session.key
export SSO_SESSION_KEY="$(cat .demo/session.key)"

"$bin" check -c conf/demo.toml >/dev/null

node idp/provider.mjs conf/demo-idp.json > .demo/idp.log 2>&1 &
echo $! > .demo/idp.pid
python3 demo/shop.py 9000 > .demo/shop.log 2>&1 &
echo $! > .demo/shop.pid
"$bin" run -c conf/demo.toml > .demo/sidecar.log 2>&1 &
echo $! > .demo/sidecar.pid

for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null http://127.0.0.1:9090/healthz 2>/dev/null \
     && curl -fsS -o /dev/null http://127.0.0.1:9000/ 2>/dev/null \
     && curl -fsS http://127.0.0.1:9090/readyz 2>/dev/null | grep -q '"state":"ready"'; then
    cat <<MSG

  sso-sidecar demo is running.

    Open:          http://127.0.0.1:8080/account/
    Organization:  Demo Shop   (or "Intershop" for the back office at /backoffice/)
    Sign in with:  demo / any password   (the demo IdP accepts any user name)

    Shop home:     http://127.0.0.1:8080/
    Metrics:       http://127.0.0.1:9090/metrics
    Demo IdP:      http://127.0.0.1:9400/realms/demo

  Logs: .demo/*.log    Stop: make demo-stop

MSG
    exit 0
  fi
  sleep 0.1
done
echo "the demo did not start; see .demo/*.log" >&2
tail -n 20 .demo/sidecar.log .demo/shop.log .demo/idp.log >&2 || true
exit 1
