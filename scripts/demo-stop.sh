#!/usr/bin/env bash
# Stops what scripts/demo.sh started.
cd "$(dirname "$0")/.."
for name in sidecar shop idp; do
  if [ -f ".demo/$name.pid" ]; then
    kill "$(cat ".demo/$name.pid")" 2>/dev/null || true
    rm -f ".demo/$name.pid"
  fi
done
echo "demo stopped"
