"""Import an OpenAPI document as an ``Api`` definition: one function for the CLI and the plugin API.

``import_openapi(definitions, name, source=... | content=...)``:

1. reads the document, JSON or YAML, Swagger 2.0 / OpenAPI 3.0 / 3.1: ``content`` (text; the REST
   API), ``url`` (an absolute http(s) URL, fetched under the rules of
   :mod:`autopilot_provider.openapi.sources`: internal addresses only when the ``allowlist`` names
   them) or ``source`` (a local file: the CLI only, where the operator names it);
2. validates it (:func:`autopilot_provider.openapi.validation.validate_document`: errors name the JSON
   pointer of the bad part) and normalises it (``$ref``s, operation ids) — nothing is written when
   either fails;
3. writes the document, byte for byte as given (it stays the source of truth), to
   ``apis/specs/<name>.json`` (or ``.yaml`` for YAML), and the definition ``apis/<name>.yaml``::

       apiVersion: autopilot/v1
       kind: Api
       id: <name>
       title: <info.title>
       spec: specs/<name>.json
       connection: <connection, default <name>_api>

   both atomically. With a :class:`~autopilot_provider.server.definition_store.DefinitionStore` (the REST API) the
   definition is saved through it, so it is validated again, gets a revision with its author, and the
   DAG bundles are refreshed; if that save fails the document is put back as it was;
4. warms the normalised cache (:mod:`autopilot_provider.openapi.cache`) so DAG parsing never pays
   for parsing the document.

An ``Api`` of that name is only replaced with ``force``; an ``Api`` with that id defined in another
file, or a non-Api file at ``apis/<name>.yaml``, is never overwritten.

API server (the plugin's ``POST /apis``) and CLI (``autopilot import-openapi``). Every failure is a
:class:`~autopilot_provider.definitions.errors.Refused` of :mod:`autopilot_provider.server.errors` (or
of :mod:`autopilot_provider.openapi.sources` for a source that cannot be read), with the HTTP status the
API answers: :class:`~autopilot_provider.server.errors.InvalidInput` (400),
:class:`~autopilot_provider.server.errors.InvalidDocument` (422, with the JSON ``pointer`` of the bad
part), :class:`~autopilot_provider.server.errors.AlreadyExists` (409).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autopilot_provider.definitions.bounded import MAX_DEPTH, LimitError, load_yaml
from autopilot_provider.definitions.validate import load_text, validate
from autopilot_provider.openapi import cache
from autopilot_provider.openapi.sources import MAX_DOCUMENT, Allowlist, SourceError, fetch_url, read_file
from autopilot_provider.openapi.spec import (
    SpecError,
    is_json_text,
    normalise,
    parse_document,
    quiet_gc,
)
from autopilot_provider.openapi.validation import validate_document
from autopilot_provider.repository.folder import Project, atomic_write
from autopilot_provider.server.errors import AlreadyExists, InvalidDefinition, InvalidDocument, InvalidInput
from autopilot_provider.server.revisions import content_version

API_DIR = "apis"
SPEC_DIR = "specs"
SPEC_SUFFIXES = (".json", ".yaml", ".yml")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # fullmatch: `$` would let a trailing newline through
CONNECTION = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass
class ImportResult:
    name: str
    api_path: str  # relative to the definitions folder
    spec_path: str
    title: str
    version: str
    openapi: str
    operations: int
    derived_ids: int  # operations without operationId (they got a derived id)
    connection: str
    replaced: bool
    revision: int | None = None
    refreshed_bundles: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def api_paths(name: str, *, json_document: bool) -> tuple[str, str]:
    """(definition path, document path), relative to the definitions folder."""
    suffix = ".json" if json_document else ".yaml"
    return f"{API_DIR}/{name}.yaml", f"{API_DIR}/{SPEC_DIR}/{name}{suffix}"


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > 200:
        raise InvalidInput(
            f"name {name!r} is not an identifier: letters, digits and underscores, starting with a letter",
            field="name",
        )
    return name


def fetch(url: str, *, allowlist: Allowlist | None = None, limit: int = MAX_DOCUMENT) -> bytes:
    """GET an absolute http(s) URL under the rules of :func:`autopilot_provider.openapi.sources.fetch_url`
    (internal addresses only when allow-listed, redirects checked, a byte cap, one message for every
    unreachable case)."""
    try:
        return fetch_url(url, allowlist=allowlist, limit=limit)
    except SourceError as exc:
        raise _failure(exc, "url") from None


def read(source: str | Path) -> bytes:
    """The bytes of a local file named by the operator (the CLI): a regular file, size-capped."""
    try:
        return read_file(source)
    except SourceError as exc:
        raise _failure(exc, "spec") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror or exc}", field="spec") from None


def _failure(exc: SourceError, where: str) -> SourceError:
    """The same refusal, naming the input at fault (``url``, ``spec``)."""
    return type(exc)(exc.message, field=where)


def api_yaml(name: str, title: str, spec_file: str, connection: str, source: str | None = None) -> str:
    data = {"apiVersion": "autopilot/v1", "kind": "Api", "id": name}
    if title:
        data["title"] = title
    if source:
        data["description"] = f"Imported from {source}"
    data["spec"] = spec_file
    data["connection"] = connection
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000, default_flow_style=False)
    return "# Written by `autopilot import-openapi`; the document in spec: is the source of truth.\n" + body


def import_openapi(
    definitions: Path | str,
    name: str,
    *,
    source: str | Path | None = None,
    url: str | None = None,
    content: str | bytes | None = None,
    connection: str | None = None,
    force: bool = False,
    store=None,
    author: str | None = None,
    allowlist: Allowlist | None = None,
) -> ImportResult:
    """Validate and store an OpenAPI document plus its ``Api`` definition (see the module docstring).

    Exactly one of ``source`` (a local file), ``url`` (an http(s) URL, internal addresses only as
    ``allowlist`` allows) and ``content`` (the text) is given. Raises a
    :class:`~autopilot_provider.definitions.errors.Refused` (nothing written, or with a ``store`` the
    store's own refusal of the save).
    """
    with quiet_gc():
        return _import(definitions, name, source, url, content, connection, force, store, author, allowlist)


def _import(definitions, name, source, url, content, connection, force, store, author, allowlist) -> ImportResult:

    root = Path(definitions).resolve()
    name = check_name(name)
    if connection is not None and (not isinstance(connection, str) or not CONNECTION.fullmatch(connection)):
        raise InvalidInput(f"connection {connection!r} is not an Airflow connection id", field="connection")
    if sum(given is not None for given in (source, url, content)) != 1:
        raise InvalidInput("give exactly one of url and content", field="content" if content is None else "url")
    if content is not None:
        where, label = "content", "content"
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        if len(data) > MAX_DOCUMENT:
            raise InvalidInput(f"content is larger than {MAX_DOCUMENT} bytes", field="content")
    elif url is not None:
        where, label = "url", str(url)
        data = fetch(str(url), allowlist=allowlist)
    else:
        where, label = "spec", str(source)
        data = read(source)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]

    # 1. parse, validate, normalise: nothing is written before this passes
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidDocument(f"{label} is not UTF-8 text: {exc}", field=where, pointer="") from None
    try:
        document = parse_document(text, source=label)
        if not cache.validated(hashlib.sha256(data).hexdigest()):  # the same bytes passed before
            validate_document(document)
        spec = normalise(document)
        count = len(spec.operations)
        derived = sum(1 for ref in spec.refs().values() if ref.derived_id)
    except SpecError as exc:
        raise InvalidDocument(exc.message, field=where, pointer=exc.pointer or "") from None

    # 2. where it goes, and what is there already
    api_rel, spec_rel = api_paths(name, json_document=is_json_text(text))
    project = Project(root, display_root="")
    existing = project.find("Api", name)
    if existing is not None and existing != api_rel:
        raise AlreadyExists(
            f"Api '{name}' is already defined in {existing}; remove it or import under another name",
            field="name",
        )
    entry = project.index().get(api_rel)
    if entry is not None and entry.kind != "Api":
        raise AlreadyExists(
            f"{api_rel} exists and is not an Api definition (kind {entry.kind}); not replacing it", field="name"
        )
    api_file = root / api_rel
    spec_file = root / spec_rel
    others = [root / API_DIR / SPEC_DIR / f"{name}{s}" for s in SPEC_SUFFIXES]
    replaced = api_file.exists() or any(p.exists() for p in others)
    if replaced and not force:
        present = [os.path.relpath(p, root) for p in [api_file, *others] if p.exists()]
        raise AlreadyExists(
            f"an Api named '{name}' exists ({', '.join(present)}); replace it with --force (API: \"replace\": true)",
            field="name",
        )
    if connection is None:
        connection = _existing_connection(project, api_rel) if api_file.exists() else None
        connection = connection or f"{name}_api"
    described = label if where == "url" else None
    definition = api_yaml(name, spec.title, f"{SPEC_DIR}/{Path(spec_rel).name}", connection, described)
    _check_definition(api_rel, definition)

    # 3. write the document, then the definition (putting the document back if that fails)
    try:  # what to put back if the definition cannot be saved (never a FIFO or device read)
        previous = read_file(spec_file) if spec_file.exists() else None
    except (SourceError, OSError):
        previous = None
    _atomic_bytes(spec_file, data)
    revision = None
    refreshed: list[str] = []
    try:
        if store is not None:
            if api_file.exists():
                saved = store.update(api_rel, definition, content_version(api_file.read_bytes()), author=author)
            else:
                saved = store.create(api_rel, definition, author=author)
            revision, refreshed = saved.revision, list(saved.refreshed_bundles)
        else:
            atomic_write(api_file, definition)
    except BaseException:
        if previous is None:
            spec_file.unlink(missing_ok=True)
        else:
            _atomic_bytes(spec_file, previous)
        raise
    for other in others:
        if other != spec_file:
            other.unlink(missing_ok=True)

    # 4. the normalised cache, so that parsing DAGs never parses the document
    cache.remember(spec_file, data, document, validated=True)
    return ImportResult(
        name=name,
        api_path=api_rel,
        spec_path=spec_rel,
        title=spec.title,
        version=spec.version,
        openapi=spec.openapi,
        operations=count,
        derived_ids=derived,
        connection=connection,
        replaced=replaced,
        revision=revision,
        refreshed_bundles=refreshed,
    )


def _check_definition(rel: str, text: str) -> None:
    """The model-level checks of the definition we wrote (not project.check_text: for an Api the DAG
    factory has nothing to add, and loading it would import Airflow — seconds for a CLI)."""

    loaded = validate(load_text(text, rel), lambda _name: None)
    if loaded.diagnostics or loaded.definition is None:  # pragma: no cover - our own YAML; a bug
        raise InvalidDefinition("; ".join(str(d) for d in loaded.diagnostics) or f"{rel}: not a definition")


def _existing_connection(project, rel: str) -> str | None:
    try:
        text = (project.root / rel).read_text(encoding="utf-8")
        data = load_yaml(text, getattr(yaml, "CSafeLoader", yaml.SafeLoader), max_depth=MAX_DEPTH)
    except (OSError, ValueError, yaml.YAMLError, LimitError):
        return None
    value = data.get("connection") if isinstance(data, dict) else None
    return value if isinstance(value, str) and CONNECTION.fullmatch(value) else None


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = [
    "ImportResult",
    "api_paths",
    "import_openapi",
]
