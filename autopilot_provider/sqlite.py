"""Connection arguments for Airflow's metadata database when it is SQLite (`make run`, the SQLite
test pass): ``[database] sql_alchemy_connect_args = autopilot_provider.sqlite.CONNECT_ARGS``.

Standalone Airflow runs its scheduler, dag-processor, triggerer and API server (with Autopilot's
approvals sweep) on one database file, and SQLite lets one of them write at a time. Python's sqlite3
gives up on a locked database after 5 s and Airflow answers such a request with a 500 "Database
error"; on a loaded machine a writer can hold the lock longer than that. Waiting up to 30 s turns
those spurious errors into short waits. (Only for SQLite: other drivers do not take ``timeout``.)
"""

CONNECT_ARGS = {"timeout": 30}
