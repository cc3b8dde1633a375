"""A normalised, lazily read copy of each OpenAPI document, keyed by the document's sha256.

``load_spec(path)`` runs while Airflow parses DAG files that have task steps, in a fresh process per
file, and again on the worker for each task. Parsing and indexing a 13 MB document (GitHub's REST
API) takes ~0.4 s each time; reading the cache takes a few milliseconds:

* the cache file starts with a small JSON header — the spec's metadata, every operation's id,
  method, path, summary and tags, and the byte range of each *shard*;
* the document itself follows as shards: one per path item and one per reusable component
  (``components/<section>/<name>``; for Swagger 2.0 ``definitions/<name>``, ``parameters/<name>``,
  ``responses/<name>``) plus the rest of the document. Building an operation reads only its path
  item and the components its ``$ref``s reach.

Where the cache lives: ``$AUTOPILOT_SPEC_CACHE`` (``off`` disables it), else
``$AIRFLOW_HOME/autopilot/spec-cache``, else ``~/.cache/autopilot/spec-cache``. Files are named by
the content hash (and the normalisation version), so an edited document never reads a stale entry;
a small per-path note (size, mtime → sha256) spares hashing an unchanged file. Every write is atomic
and every failure to read or write the cache falls back to parsing the document.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from autopilot_provider.openapi import spec as S
from autopilot_provider.openapi.sources import SourceError, read_file
from autopilot_provider.openapi.validation import validate_document

log = logging.getLogger(__name__)

MAGIC = b"AUTOPILOT-SPEC-CACHE 1\n"
#: Keep at most this many cache files (the oldest are removed).
MAX_FILES = 64
#: Content of ``<sha>.valid``: the document with that hash passed this version of the validation.
VALID_MARK = b"validated 1"
#: A file modified less than this long ago is hashed rather than trusted by its size and times.
RACY_NS = 3_000_000_000
_SWAGGER_SECTIONS = ("definitions", "parameters", "responses")


def cache_dir() -> Path | None:
    configured = os.environ.get("AUTOPILOT_SPEC_CACHE")
    if configured is not None:
        if configured.strip().lower() in ("", "0", "off", "false", "no"):
            return None
        return Path(configured).expanduser()
    home = os.environ.get("AIRFLOW_HOME")
    if home:
        return Path(home).expanduser() / "autopilot" / "spec-cache"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "autopilot" / "spec-cache"


def _entry_name(sha: str) -> str:
    return f"{sha}.n{S.NORMALISE_VERSION}.spec"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load(path: Path, *, validate: bool = False) -> S.Spec:
    """The spec of a local file: from the cache when it has the content, else parsed (and cached)."""
    folder = cache_dir()
    data: bytes | None = None
    sha = None
    try:
        stat = path.stat()
    except OSError as exc:
        raise S.SpecError(f"cannot read {path}: {exc.strerror or exc}", "") from None
    if folder is not None:
        sha = _noted_sha(folder, path, stat)
    if sha is None:
        data = _read(path)
        sha = hashlib.sha256(data).hexdigest()
        if folder is not None:
            try:
                _note_sha(folder, path, stat, sha)
            except OSError as exc:
                log.debug("cannot write the OpenAPI cache in %s: %s", folder, exc)
                folder = None
    if folder is not None:
        entry = folder / _entry_name(sha)
        spec = _open(entry, path, sha)
        if spec is not None and (not validate or validated(sha, folder)):
            return spec
    if data is None:
        data = _read(path)
    document = S.parse_document(data, source=str(path))
    if validate:
        validate_document(document)
    spec = S.normalise(document)
    spec.sha256 = sha
    if folder is not None:
        write(document, sha, folder=folder, validated=validate, spec=spec)
    return spec


def _read(path: Path) -> bytes:
    """A regular file of at most MAX_DOCUMENT bytes (a FIFO or device is refused, not waited on)."""
    try:
        return read_file(path)
    except SourceError as exc:
        raise S.SpecError(f"cannot read {path}: {exc.message}", "") from None
    except OSError as exc:
        raise S.SpecError(f"cannot read {path}: {exc.strerror or exc}", "") from None


def _note_path(folder: Path, path: Path) -> Path:
    key = hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()
    return folder / "by-path" / f"{key}.json"


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _noted_sha(folder: Path, path: Path, stat: os.stat_result) -> str | None:
    """The sha256 noted for this file, if it is unchanged since. A file changed in the last few seconds
    is hashed anyway (file times are coarser than a nanosecond: two writes of the same size within
    one tick would look alike — git's "racy clean" problem)."""
    if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) < RACY_NS:
        return None
    try:
        note = json.loads(_note_path(folder, path).read_text())
        if note["stat"] == _stat_key(stat):
            return str(note["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _note_sha(folder: Path, path: Path, stat: os.stat_result, sha: str) -> None:
    note = {"path": str(path.resolve()), "stat": _stat_key(stat), "sha256": sha}
    _atomic(_note_path(folder, path), json.dumps(note).encode())


def _open(entry: Path, source: Path, sha: str) -> S.Spec | None:
    try:
        with open(entry, "rb") as handle:
            if handle.readline() != MAGIC:
                return None
            header = json.loads(handle.readline())
            start = handle.tell()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the unreadable OpenAPI cache file %s: %s", entry, exc)
        return None
    if header.get("sha256") != sha or header.get("normalise") != S.NORMALISE_VERSION:
        return None
    document = LazyDocument(entry, start, header["shards"], source, sha)
    meta = header["meta"]
    resolver = S._Resolver(document)
    context = S._Context(resolver=resolver, swagger=meta["openapi"].startswith("2"), consumes=tuple(meta["consumes"]))
    refs = {
        op[0]: S.OperationRef(
            id=op[0], method=op[1], path=op[2], derived_id=op[3], summary=op[4], tags=tuple(op[5]), deprecated=op[6]
        )
        for op in header["ops"]
    }
    return S.Spec(
        title=meta["title"],
        version=meta["version"],
        openapi=meta["openapi"],
        servers=meta["servers"],
        security_schemes=meta["security_schemes"],
        security=meta["security"],
        operations=S.Operations(refs, lambda ref: S._build_operation(context, ref)),
        document_loader=document.full,
        context=context,
        tags=meta["tags"],
        sha256=sha,
    )


class LazyDocument:
    """The document as shards read on demand (``node(parts)`` is what the resolver walks)."""

    def __init__(self, entry: Path, start: int, shards: dict[str, list[int]], source: Path, sha: str):
        self.entry = entry
        self.start = start
        self.index = shards
        self.source = source
        self.sha = sha
        self.loaded: dict[str, Any] = {}
        self._full: dict[str, Any] | None = None

    def node(self, parts: list[str], ref: str = "") -> Any:
        key, rest = _shard_key(parts, self.index)
        if key is None:
            return S.walk(self.full(), parts, ref)
        try:
            shard = self.shard(key)
        except (OSError, ValueError) as exc:  # the entry was pruned or damaged meanwhile
            log.warning("OpenAPI cache entry %s unreadable (%s); reading %s", self.entry, exc, self.source)
            self.index = {}
            return S.walk(self.full(), parts, ref)
        return S.walk(shard, rest, ref)

    def shard(self, key: str) -> Any:
        if key not in self.loaded:
            offset, length = self.index[key]
            with open(self.entry, "rb") as handle:
                handle.seek(self.start + offset)
                data = handle.read(length)
            if len(data) != length:
                raise ValueError("truncated")
            self.loaded[key] = json.loads(data)
        return self.loaded[key]

    def full(self) -> dict[str, Any]:
        """The whole original document (parsed from the source file)."""
        if self._full is None:
            data = _read(self.source)
            if hashlib.sha256(data).hexdigest() != self.sha:
                log.warning("%s changed since its spec was loaded; reading the new content", self.source)
            self._full = S.parse_document(data, source=str(self.source))
        return self._full


def _shard_key(parts: list[str], index: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(shard key, the rest of the path inside it) — (None, parts) when only the full document has it."""
    if not parts:
        return None, parts
    head = parts[0]
    if head == "paths" or head in _SWAGGER_SECTIONS:
        depth = 2
    elif head == "components":
        depth = 3
    else:
        return "", parts
    if len(parts) < depth:
        return None, parts
    key = S.pointer(*parts[:depth])
    if key not in index:
        return None, parts
    return key, parts[depth:]


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def shards(document: dict[str, Any]) -> dict[str, Any]:
    """pointer → part of the document (path items, components, the rest under "")."""
    swagger = str(document.get("swagger", "")).startswith("2")
    out: dict[str, Any] = {}
    rest = dict(document)
    paths = document.get("paths")
    if isinstance(paths, dict):
        rest.pop("paths")
        for path, item in paths.items():
            out[S.pointer("paths", path)] = item
    components = document.get("components")
    if isinstance(components, dict):
        kept = {}
        for section, entries in components.items():
            if isinstance(entries, dict):
                for name, value in entries.items():
                    out[S.pointer("components", section, name)] = value
            else:
                kept[section] = entries
        rest["components"] = kept
    if swagger:
        for section in _SWAGGER_SECTIONS:
            entries = document.get(section)
            if isinstance(entries, dict):
                rest.pop(section)
                for name, value in entries.items():
                    out[S.pointer(section, name)] = value
    out[""] = rest
    return out


def write(
    document: dict[str, Any],
    sha: str,
    *,
    folder: Path | None = None,
    validated: bool = False,
    spec: S.Spec | None = None,
) -> Path | None:
    """Write the cache entry for a parsed document (best effort: None when it cannot)."""
    folder = folder or cache_dir()
    if folder is None:
        return None
    try:
        entry = folder / _entry_name(sha)
        if validated:
            _atomic(folder / f"{sha}.valid", VALID_MARK)
        if entry.exists():
            return entry
        spec = spec or S.normalise(document)
        blobs: list[bytes] = []
        index: dict[str, list[int]] = {}
        offset = 0
        for key, value in shards(document).items():
            blob = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
            index[key] = [offset, len(blob)]
            blobs.append(blob)
            offset += len(blob)
        header = {
            "sha256": sha,
            "normalise": S.NORMALISE_VERSION,
            "meta": {
                "title": spec.title,
                "version": spec.version,
                "openapi": spec.openapi,
                "servers": spec.servers,
                "security_schemes": spec.security_schemes,
                "security": spec.security,
                "consumes": list(document.get("consumes") or []),
                "tags": spec.tags,
            },
            "ops": [
                [r.id, r.method, r.path, r.derived_id, r.summary, list(r.tags), r.deprecated]
                for r in spec.refs().values()
            ],
            "shards": index,
        }
        head = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode()
        _atomic(entry, b"".join([MAGIC, head, b"\n", *blobs]))
        _prune(folder)
        return entry
    except (OSError, TypeError, ValueError, S.SpecError) as exc:
        log.warning("could not write the OpenAPI cache in %s: %s", folder, exc)
        return None


def validated(sha: str, folder: Path | None = None) -> bool:
    """Whether a document with this sha256 already passed validation (so an import can skip it)."""
    folder = folder or cache_dir()
    if folder is None:
        return False
    try:
        return (folder / f"{sha}.valid").read_bytes() == VALID_MARK
    except OSError:
        return False


def remember(path: Path, data: bytes, document: dict[str, Any], *, validated: bool) -> None:
    """After writing ``data`` to ``path`` (an import): note its hash and write its cache entry."""
    folder = cache_dir()
    if folder is None:
        return
    sha = hashlib.sha256(data).hexdigest()
    try:
        _note_sha(folder, path, path.stat(), sha)
    except OSError:
        pass
    write(document, sha, folder=folder, validated=validated)


def _atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _prune(folder: Path) -> None:
    entries = []
    for entry in folder.glob("*.spec"):
        try:
            entries.append((entry.stat().st_mtime, entry))
        except OSError:
            continue
    if len(entries) <= MAX_FILES:
        return
    for _, old in sorted(entries)[:-MAX_FILES]:
        old.unlink(missing_ok=True)
        (folder / f"{old.name.split('.')[0]}.valid").unlink(missing_ok=True)


def load_spec(source: str | Path | dict[str, Any], *, validate: bool = True, cache: bool = True) -> S.Spec:
    """Load an OpenAPI document from a dict or a local file, validate it and normalise it.

    A local file is normalised once per content (sha256) into the cache folder
    (:func:`cache_dir`); later loads read that. ``cache=False`` skips it.
    """
    if isinstance(source, dict):
        if validate:
            validate_document(source)
        return S.normalise(source)
    text = str(source)
    if cache and not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", text):
        return load(Path(source), validate=validate)
    document = S.parse_document(S.read_source(source), source=text)
    if validate:
        validate_document(document)
    return S.normalise(document)


__all__ = ["LazyDocument", "cache_dir", "load", "load_spec", "remember", "shards", "validated", "write"]
