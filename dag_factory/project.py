"""A folder of definitions: which files are definitions, where each function lives, and loading
with every check (model, semantics, and what the factory can compile).

Looking up a function does not read every file: an index (kind and id per file, keyed on the
file's mtime and size) is kept next to the generated DAG stubs and refreshed cheaply.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autopilot_provider.definitions.errors import Diagnostic
from autopilot_provider.definitions.source import quick_header
from autopilot_provider.definitions.validate import Loaded, load_text, suggest, validate

SUFFIXES = (".yaml", ".yml")
#: Sub-folders of definitions/ that hold other things than definitions.
RESERVED_DIRS = {"schema", "templates", "specs"}
INDEX_VERSION = 1


def is_definition_path(rel: str) -> bool:
    parts = Path(rel).parts
    return (
        rel.endswith(SUFFIXES)
        and not any(p.startswith(".") for p in parts)
        and not (len(parts) > 1 and parts[0] in RESERVED_DIRS)
        and not any(p in RESERVED_DIRS for p in parts[:-1])
    )


@dataclass
class IndexEntry:
    mtime_ns: int
    size: int
    kind: str | None
    id: str | None


class Project:
    """The definitions under ``root``. ``index_path`` is where the file index is cached (optional)."""

    def __init__(
        self,
        root: Path | str,
        *,
        index_path: Path | None = None,
        display_root: str | None = None,
        trust_index: bool = False,
    ):
        self.root = Path(root).resolve()
        self.index_path = index_path
        # While Airflow parses stubs, the index that the bundle's last refresh wrote is the truth:
        # re-walking the folder for every stub would make parsing N definitions cost O(N²).
        self.trust_index = trust_index
        self.display_root = self.root.name if display_root is None else display_root
        self._index: dict[str, IndexEntry] | None = None
        self._loaded: dict[str, Loaded] = {}
        self._loading: list[str] = []

    # -- files and index ---------------------------------------------------------------------

    def display(self, rel: str) -> str:
        return f"{self.display_root}/{rel}" if self.display_root else rel

    def files(self) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and not (rel_dir == "." and d in RESERVED_DIRS)
            )
            for name in filenames:
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if is_definition_path(rel):
                    found.append(rel)
        return sorted(found)

    def index(self) -> dict[str, IndexEntry]:
        """rel path → (mtime, size, kind, id); re-reads only files whose mtime or size changed."""
        if self._index is not None:
            return self._index
        cached = self._read_index()
        if self.trust_index and cached:
            self._index = cached
            return cached
        index: dict[str, IndexEntry] = {}
        for rel in self.files():
            stat = (self.root / rel).stat()
            old = cached.get(rel)
            if old and old.mtime_ns == stat.st_mtime_ns and old.size == stat.st_size:
                index[rel] = old
                continue
            kind, ident = quick_header((self.root / rel).read_text(encoding="utf-8", errors="replace"))
            index[rel] = IndexEntry(stat.st_mtime_ns, stat.st_size, kind, ident)
        self._index = index
        return index

    def _read_index(self) -> dict[str, IndexEntry]:
        if not self.index_path or not self.index_path.exists():
            return {}
        try:
            raw = json.loads(self.index_path.read_text())
            if raw.get("version") != INDEX_VERSION or raw.get("root") != str(self.root):
                return {}
            return {rel: IndexEntry(**entry) for rel, entry in raw["files"].items()}
        except (ValueError, TypeError, KeyError):
            return {}

    def write_index(self) -> None:
        if not self.index_path:
            return
        data = {
            "version": INDEX_VERSION,
            "root": str(self.root),
            "files": {rel: vars(entry) for rel, entry in self.index().items()},
        }
        atomic_write(self.index_path, json.dumps(data, sort_keys=True))

    def invalidate(self) -> None:
        self._index = None
        self._loaded.clear()

    # -- loading -----------------------------------------------------------------------------

    def load(self, rel: str) -> Loaded:
        """Load and fully validate one file (cached for the life of this Project)."""
        if rel in self._loaded:
            return self._loaded[rel]
        text = (self.root / rel).read_text(encoding="utf-8")
        return self._check(rel, text, cache=True)

    def check_text(self, rel: str, text: str) -> Loaded:
        """Validate text as if it were saved at ``rel`` (nothing is written)."""
        return self._check(rel, text, cache=False)

    def _check(self, rel: str, text: str, *, cache: bool) -> Loaded:
        from dag_factory.registry import factory_diagnostics

        self._loading.append(rel)
        try:
            loaded = load_text(text, self.display(rel))
            validate(loaded, self.function)
            if loaded.definition is not None:
                loaded.diagnostics.extend(factory_diagnostics(loaded, self))
            loaded.diagnostics.sort()
        finally:
            self._loading.pop()
        if cache:
            self._loaded[rel] = loaded
        return loaded

    def function(self, function_id: str) -> Loaded | None:
        rel = self.find("Function", function_id)
        if rel is None:
            return None
        if rel in self._loading:
            loaded = Loaded(path=self.display(rel))
            loaded.diagnostics.append(Diagnostic(self.display(rel), 1, 1, f"function '{function_id}' uses itself"))
            return loaded
        return self.load(rel)

    def find(self, kind: str, ident: str) -> str | None:
        for rel, entry in self.index().items():
            if entry.kind == kind and entry.id == ident:
                return rel
        return None

    def ids(self, kind: str) -> list[str]:
        return sorted(e.id for e in self.index().values() if e.kind == kind and e.id)

    def of_kind(self, kind: str) -> list[Loaded]:
        return [self.load(rel) for rel, entry in self.index().items() if entry.kind == kind]

    def load_all(self) -> dict[str, Loaded]:
        return {rel: self.load(rel) for rel in self.index()}

    def duplicate_ids(self) -> list[Diagnostic]:
        """Two files defining the same kind and id (a workflow id is a DAG id: it must be unique)."""
        seen: dict[tuple[str, str], str] = {}
        problems = []
        for rel, entry in sorted(self.index().items()):
            if not entry.kind or not entry.id:
                continue
            key = ("Workflow" if entry.kind == "Workflow" else entry.kind, entry.id)
            if key in seen:
                problems.append(
                    Diagnostic(
                        self.display(rel),
                        1,
                        1,
                        f"{entry.kind} id '{entry.id}' is already defined in {self.display(seen[key])}",
                    )
                )
            else:
                seen[key] = rel
        return problems

    def api_spec(self, api_id: str):
        """(Loaded Api definition, Spec) for an Api id, or None when there is no such Api.

        The spec path in the Api definition is relative to that definition's file (or a URL).
        Raises ``SpecError`` when the document cannot be read or is not OpenAPI.
        """
        rel = self.find("Api", api_id)
        if rel is None:
            return None
        loaded = self.load(rel)
        if not loaded.ok:
            return loaded, None
        source = loaded.definition.spec
        if not re.match(r"^https?://", source):
            source = str((self.root / rel).parent / source)
        return loaded, cached_spec(source)

    def unknown_function_hint(self, name: str) -> str:
        hint = suggest(name, self.ids("Function"))
        unreadable = sorted(rel for rel, entry in self.index().items() if entry.kind is None)
        if not hint and unreadable:
            hint = f" (these definition files could not be read: {', '.join(unreadable[:5])})"
        return hint


def cached_spec(source: str):
    """Load (without re-validating: import validated it) and cache a spec per process, keyed on the
    file's mtime and size so an edited document is re-read."""
    from autopilot_provider.openapi.spec import load_spec

    try:
        stat = os.stat(source)
        key = (source, stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (source, 0, 0)
    if key not in _SPECS:
        _SPECS[key] = load_spec(source, validate=False)
    return _SPECS[key]


_SPECS: dict[tuple[str, int, int], Any] = {}


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def relative(root: Path, path: Path | str) -> str:
    return os.path.relpath(Path(path).resolve(), root)


__all__: list[Any] = ["Project", "atomic_write", "is_definition_path"]
