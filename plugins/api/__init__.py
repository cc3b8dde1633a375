"""The plugin's REST API, laid out like Airflow's own ``api_fastapi/core_api``: ``routes/`` (one
``APIRouter`` per resource), ``datamodels/`` (its pydantic models in and out), ``services/`` (the glue
only the API needs), ``deps`` (the dependencies every route shares: user, permission checks, store),
``permissions`` (the one implementation of every check) and ``errors`` (refusals to responses, and
the error responses the OpenAPI document lists)."""
