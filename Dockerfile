# Autopilot's image: the official Apache Airflow image, of the Airflow version Autopilot is built and
# tested with (.venv: apache-airflow 3.3.2, Python 3.11), plus the wheel `make dist` builds and the
# providers of the distributed topology (Celery, PostgreSQL). docker-compose.yaml builds it;
# tests/test_deploy.py checks that the version here is the one the venv has.
#
#   make dist && docker build -t autopilot-airflow:local .
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
ARG AIRFLOW_VERSION

USER root
# deploy/init.sh: airflow db migrate, autopilot db migrate, the logins (compose's airflow-init)
COPY deploy/init.sh /opt/autopilot/init.sh
# the folders compose mounts named volumes on (they take this ownership) and the definitions' mount
# point, writable by group 0 as the official image's own folders are (AIRFLOW_UID may be any user)
RUN chmod 0755 /opt/autopilot/init.sh \
 && mkdir -p /opt/airflow/auth /opt/airflow/definitions /opt/airflow/dag_bundles \
 && chown -R airflow:0 /opt/airflow/auth /opt/airflow/definitions /opt/airflow/dag_bundles \
 && chmod -R g+rwX /opt/airflow/auth /opt/airflow/definitions /opt/airflow/dag_bundles

USER airflow
COPY --chown=airflow:0 dist/airflow_provider_autopilot-*.whl /tmp/autopilot/
# apache-airflow is named with its version so that pip never changes the image's Airflow; celery<5.7:
# the Celery provider imports what celery 5.7 removed (setup.cfg's celery extra says the same)
RUN pip install --no-cache-dir \
      "apache-airflow==${AIRFLOW_VERSION}" \
      /tmp/autopilot/airflow_provider_autopilot-*.whl \
      apache-airflow-providers-celery \
      "celery[redis]>=5.5,<5.7" \
      apache-airflow-providers-postgres \
 && rm -rf /tmp/autopilot
