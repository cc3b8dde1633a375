# Source this to point the airflow and autopilot commands at the local `make run` instance:
#   source scripts/airflow-env.sh
_autopilot_repo="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$_autopilot_repo/.airflow}"
_defs="${AUTOPILOT_DEFINITIONS:-$_autopilot_repo/definitions}"
export AUTOPILOT_DEFINITIONS="$_defs"
export AIRFLOW__AUTOPILOT__DEFINITIONS_DIR="$_defs"
export AIRFLOW__CORE__DAGS_FOLDER="$_defs"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
# admin, plus the people of the example contacts (definitions/contacts.yaml), so requests and approvals
# can be tried as requester, manager, operations and storage
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin,alice:user,bob:user,carol:user,dave:user}"
export AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST="[{\"name\": \"autopilot\", \"classpath\": \"dag_factory.bundle.AutopilotDagBundle\", \"kwargs\": {\"definitions\": \"$_defs\", \"refresh_interval\": 10}}]"
export AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH="$AIRFLOW_HOME/dag_bundles"
# standalone's components share one SQLite file: wait for its write lock instead of failing after 5 s
case "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite}" in
  sqlite*) export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS:-autopilot_provider.sqlite.CONNECT_ARGS}" ;;
esac
export PATH="$_autopilot_repo/.venv/bin:$PATH"
unset _defs
