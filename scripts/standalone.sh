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
# one generated password per configured user (kept across restarts; users added later get theirs)
python - "$passwords" <<'PY'
import json, os, secrets, sys
path = sys.argv[1]
known = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
users = [u.split(":")[0] for u in os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",") if u]
passwords = {u: known.get(u) or secrets.token_urlsafe(12) for u in users}
with open(path, "w") as f:
    json.dump(passwords, f)
PY

# The outside systems of the reference scenario (mail, Slack, the example backup product) on
# loopback, unless AUTOPILOT_SANDBOX=0; connections already exported as AIRFLOW_CONN_* are kept.
sandbox="$AIRFLOW_HOME/sandbox"
if [ "${AUTOPILOT_SANDBOX:-1}" != "0" ]; then
  rm -f "$sandbox/connections.env"
  python scripts/sandbox.py "$sandbox" &
  for _ in $(seq 100); do [ -f "$sandbox/connections.env" ] && break; sleep 0.1; done
  [ -f "$sandbox/connections.env" ] || { echo "the sandbox did not start"; exit 1; }
  # shellcheck disable=SC1091
  source "$sandbox/connections.env"
fi

echo
echo "== Autopilot on Airflow: http://localhost:$port"
python - "$passwords" <<'PY'
import json, sys
for user, password in json.load(open(sys.argv[1])).items():
    print(f"   login: {user} / {password}")
PY
echo "   definitions: $AUTOPILOT_DEFINITIONS   (Ctrl-C stops Airflow)"
if [ "${AUTOPILOT_SANDBOX:-1}" != "0" ]; then
  echo "   sandbox: mail in $sandbox/mail.log, Slack posts in $sandbox/slack.log,"
  echo "            the example backup product behind the connections backup_api and backup_clients,"
  echo "            ServiceNow behind servicenow_default (ticket changes in $sandbox/servicenow.log)"
fi
echo
exec airflow standalone
