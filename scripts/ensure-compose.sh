#!/usr/bin/env bash
# tests/test_deploy.py checks docker-compose.yaml with a real Compose implementation, offline:
# `docker-compose config` resolves and validates the file (schema, interpolation, anchors) without a
# Docker engine. Debian's docker-compose package (Compose 1.29, Python; Debian 13 ships Compose 2)
# provides it; the engine it recommends is not installed. Install it when missing and we may.
set -euo pipefail
if command -v docker-compose >/dev/null 2>&1 || { command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; }; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing docker-compose (Debian's package, without the engine) to check docker-compose.yaml"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >/dev/null; }
else
  echo "docker-compose is missing: install it (apt-get install --no-install-recommends docker-compose);" \
       "tests/test_deploy.py cannot check docker-compose.yaml without it (make test fails it; plain pytest skips it)" >&2
fi
