#!/usr/bin/env bash
# Prepare a distributed Autopilot deployment, once before its components start, and again after an
# upgrade (docs/deploy.md): docker-compose.yaml's airflow-init service runs it, so does `make cluster`
# (scripts/cluster.py), with the same environment the components get, and so does the Helm chart's
# migrate-database job (deploy/helm/values.yaml).
#   1. Airflow's tables (airflow db migrate), then Autopilot's (autopilot db migrate): in that order,
#      Autopilot's tables refer to Airflow's;
#   2. the logins: with the SimpleAuthManager, a password for each user of
#      [core] simple_auth_manager_users, kept across runs, from AUTOPILOT_PASSWORD_<USER> when that is
#      set (compose: from .env), generated otherwise, written to the passwords file the API server reads.
#   3. roles: with the FAB auth manager, `autopilot roles sync` — the Autopilot permissions (granted to
#      Admin) and the roles Autopilot Requester, Approver, Designer and Admin with exactly their
#      permissions (docs/security.md); people get roles with `airflow users add-role` or in the UI.
set -euo pipefail

echo "== airflow db migrate"
airflow db migrate
echo "== autopilot db migrate"
autopilot db migrate

# the auth manager and its files as Airflow's configuration has them (environment, airflow.cfg or,
# with the Helm chart, its config map)
auth_manager="$(airflow config get-value core auth_manager)"
case "$auth_manager" in
  *FabAuthManager)
    echo "== autopilot roles sync (FAB)"
    autopilot roles sync
    ;;
  *SimpleAuthManager)
    echo "== logins (SimpleAuthManager)"
    python - <<'PY'
import json, os, secrets

from airflow.configuration import conf

path = conf.get("core", "simple_auth_manager_passwords_file")
users = [u.split(":")[0] for u in conf.get("core", "simple_auth_manager_users").split(",") if u]
known = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
passwords = {
    user: os.environ.get(f"AUTOPILOT_PASSWORD_{user.upper()}") or known.get(user) or secrets.token_urlsafe(12)
    for user in users
}
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump(passwords, f)
print(f"   in {path}")
for user in users:
    print(f"   login: {user} / {passwords[user]}")
PY
    ;;
  *)
    echo "== auth manager $auth_manager: create its users and roles as it documents"
    ;;
esac
echo "== ready"
