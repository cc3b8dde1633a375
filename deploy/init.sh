#!/usr/bin/env bash
# Prepare a distributed Autopilot deployment, once before its components start, and again after an
# upgrade (docs/deploy.md): docker-compose.yaml's airflow-init service runs it, and so does
# `make cluster` (scripts/cluster.py), with the same environment the components get.
#   1. Airflow's tables (airflow db migrate), then Autopilot's (autopilot db migrate): in that order,
#      Autopilot's tables refer to Airflow's;
#   2. the logins: with the SimpleAuthManager, a password for each user of
#      [core] simple_auth_manager_users, kept across runs, from AUTOPILOT_PASSWORD_<USER> when that is
#      set (compose: from .env), generated otherwise, written to the passwords file the API server reads.
#   3. roles: with the FAB auth manager, `autopilot permissions sync` (and the Autopilot roles, when
#      they exist) — the place for issue 15's roles work.
set -euo pipefail

echo "== airflow db migrate"
airflow db migrate
echo "== autopilot db migrate"
autopilot db migrate

case "${AIRFLOW__CORE__AUTH_MANAGER:-}" in
  *FabAuthManager)
    echo "== autopilot permissions sync (FAB)"
    autopilot permissions sync
    ;;
  *)
    echo "== logins (SimpleAuthManager) in $AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    python - <<'PY'
import json, os, secrets

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
known = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
users = [u.split(":")[0] for u in os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",") if u]
passwords = {
    user: os.environ.get(f"AUTOPILOT_PASSWORD_{user.upper()}") or known.get(user) or secrets.token_urlsafe(12)
    for user in users
}
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump(passwords, f)
for user in users:
    print(f"   login: {user} / {passwords[user]}")
PY
    ;;
esac
echo "== ready"
