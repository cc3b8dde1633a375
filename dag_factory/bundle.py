"""A DAG bundle that serves the workflows in a definitions folder.

Configure it in ``[dag_processor] dag_bundle_config_list``::

    [{"name": "autopilot", "classpath": "dag_factory.bundle.AutopilotDagBundle",
      "kwargs": {"definitions": "/path/to/definitions", "refresh_interval": 10}}]

Without ``definitions`` the folder is :func:`autopilot_provider.config.definitions_dir`'s, the same
one the REST API and the CLI serve (env ``AUTOPILOT_DEFINITIONS``, else ``[autopilot] definitions_dir``,
else ``[core] dags_folder``).

The dag-processor calls ``refresh()`` on its interval: it regenerates the stubs. A worker calls
``initialize()`` before it runs a task: it regenerates them only when the definitions (or the stubs)
changed since the last sync — a stat per file instead of reading every definition and stub.
"""

from __future__ import annotations

import logging
from pathlib import Path

from airflow.dag_processing.bundles.base import BaseDagBundle

from autopilot_provider import config
from dag_factory.stubs import stubs_up_to_date, sync_stubs

log = logging.getLogger(__name__)


class AutopilotDagBundle(BaseDagBundle):
    supports_versioning = False

    def __init__(self, *, definitions: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.definitions = Path(config.definitions_dir(definitions)).expanduser().resolve()
        self._path = Path(self.base_dir) / "stubs"

    @property
    def path(self) -> Path:
        return self._path

    def get_current_version(self) -> None:
        return None

    def initialize(self) -> None:
        with self.lock():
            if not stubs_up_to_date(self.definitions, self._path):
                sync_stubs(self.definitions, self._path)
        super().initialize()

    def refresh(self) -> None:
        with self.lock():
            sync_stubs(self.definitions, self._path)


def refresh_bundles() -> list[str]:
    """Regenerate the stubs of every configured ``AutopilotDagBundle`` so the DAG processor sees a save
    on its next pass. Returns the names refreshed; failures are logged, never raised."""
    try:
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        refreshed = []
        for bundle in DagBundlesManager().get_all_dag_bundles():
            if isinstance(bundle, AutopilotDagBundle):
                bundle.refresh()
                refreshed.append(bundle.name)
        return refreshed
    except Exception:
        log.exception("could not refresh the Autopilot DAG bundle")
        return []
