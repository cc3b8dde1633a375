"""The glue behind ``/apis``: an import as the API takes it (one of ``url`` and ``content``; internal
hosts only as ``[autopilot] fetch_allowlist`` allows), and the catalog of the folder a request serves.

The import is :func:`autopilot_provider.server.openapi_import.import_openapi` — the same function as
``autopilot import-openapi`` — with the definition saved through the
:class:`~autopilot_provider.server.definition_store.DefinitionStore`, so it is validated, gets a revision
(author = the Airflow user) and the DAG bundles are refreshed. The catalog is
:mod:`autopilot_provider.openapi.catalog`.
"""

from __future__ import annotations

from typing import Any

from autopilot_plugin.api.datamodels.apis import ApiDetail, ApiImport, TagOut

from autopilot_provider import config
from autopilot_provider.definitions.errors import Refused
from autopilot_provider.openapi.catalog import api_entry, spec_of, tags
from autopilot_provider.openapi.sources import Allowlist
from autopilot_provider.repository.folder import Project
from autopilot_provider.server.definition_store import DefinitionStore
from autopilot_provider.server.errors import InvalidInput
from autopilot_provider.server.openapi_import import ImportResult, import_openapi


class Misconfigured(Refused):
    """An ``[autopilot]`` option the request needs is malformed (503: the operator must fix it)."""

    status = 503


def fetch_allowlist() -> Allowlist:
    """``[autopilot] fetch_allowlist``: the internal hosts and networks imports may fetch from."""
    try:
        return Allowlist.parse(config.fetch_allowlist())
    except ValueError as exc:
        raise Misconfigured(f"[autopilot] {exc}", field="url") from None


def import_api(store: DefinitionStore, body: ApiImport, author: str) -> ImportResult:
    """Import the document ``body`` names or carries, saving its Api definition through ``store``."""
    if (body.url is None) == (body.content is None):
        raise InvalidInput("give exactly one of url and content", field="content")
    return import_openapi(
        store.root,
        body.name,
        url=body.url,
        content=body.content,
        allowlist=fetch_allowlist() if body.url is not None else None,
        connection=body.connection,
        force=body.replace,
        store=store,
        author=author,
    )


def catalog(store: DefinitionStore) -> Project:
    """The definitions folder ``store`` serves, read as the catalog reads it (paths relative to it)."""
    return Project(store.root, display_root="")


def api_detail(project: Any, name: str) -> ApiDetail:
    """One Api, with the tags and security schemes of its document when it loads."""
    entry = api_entry(project, name)
    detail = ApiDetail(**vars(entry))
    if entry.valid:
        spec = spec_of(project, name)
        detail.tags = [TagOut(**t) for t in tags(spec)]
        detail.security_schemes = spec.security_schemes
    return detail
