"""The folder of definitions and what reads it, with no Airflow import except through
``autopilot_provider.config``: :mod:`~autopilot_provider.repository.folder` (class ``Project``: which
files are definitions, the index, loading with every check), ``checks/`` (each step kind's checks
against the rest of the folder), ``contacts``, ``forms`` (request forms as JSON Schema, and their
validation), ``scope`` (the names templates see at run time) and ``protocol`` (``Definitions``, what the
checks and forms read from a folder). Used by workers, the API server, the factory and the CLI."""
