#!/usr/bin/env bash
# `make run`: start Airflow standalone (SQLite, LocalExecutor) with Autopilot and definitions/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/airflow-env.sh
port="${AIRFLOW__API__PORT:-8080}"
# workers reach the API server's execution API; keep it on the same port
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://localhost:$port/execution/}"
mkdir -p "$AIRFLOW_HOME"

echo "== Checking definitions"
autopilot validate "$AUTOPILOT_DEFINITIONS" || echo "(the files above will show as import errors in Airflow)"

echo "== Preparing the metadata database in $AIRFLOW_HOME"
airflow db migrate >/dev/null
if autopilot --help 2>/dev/null | grep -q " db "; then autopilot db migrate >/dev/null; fi

passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$passwords"
if [ ! -s "$passwords" ]; then
  python - "$passwords" <<'PY'
import json, secrets, sys, os
users = [u.split(":")[0] for u in os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",") if u]
with open(sys.argv[1], "w") as f:
    json.dump({u: secrets.token_urlsafe(12) for u in users}, f)
PY
fi

echo
echo "== Autopilot on Airflow: http://localhost:$port"
python - "$passwords" <<'PY'
import json, sys
for user, password in json.load(open(sys.argv[1])).items():
    print(f"   login: {user} / {password}")
PY
echo "   definitions: $AUTOPILOT_DEFINITIONS   (Ctrl-C stops Airflow)"
echo
exec airflow standalone
