"""One module per step kind; each turns a step into Airflow tasks (see ``dag_factory.registry``)."""
