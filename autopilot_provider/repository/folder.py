"""A folder of definitions: which files are definitions, where each function lives, and loading
with every check (model, semantics, and what the factory can compile).

Looking up a function does not read every file: an index (kind and id per file, keyed on the
file's mtime and size) is kept next to the generated DAG stubs and refreshed cheaply.

While Airflow parses the stubs, a file whose checks passed before is not checked again: the result
is cached on disk (``validated_dir``, next to the stubs), keyed on the file's text, the state of the
whole definitions folder when the bundle last refreshed (``tree_fingerprint``, in the index) and the
installed Autopilot code. Any change anywhere in the folder — or a new Autopilot — checks everything
again; a file with errors is always checked again, so errors are reported exactly as without the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import autopilot_provider
from autopilot_provider.definitions.errors import Diagnostic, suggest
from autopilot_provider.definitions.models import DAG_KINDS
from autopilot_provider.definitions.source import quick_header
from autopilot_provider.definitions.validate import Loaded, load_data, load_text, validate
from autopilot_provider.openapi.cache import load_spec
from autopilot_provider.openapi.sources import SourceError, spec_file_problem, spec_path
from autopilot_provider.openapi.spec import Spec, SpecError
from autopilot_provider.repository.checks import project_diagnostics
from autopilot_provider.repository.contacts import Directory

SUFFIXES = (".yaml", ".yml")
#: Sub-folders of definitions/ that hold other things than definitions.
RESERVED_DIRS = {"schema", "templates", "specs"}
INDEX_VERSION = 1
#: Bump to invalidate every validation result cached on disk.
VALIDATION_CACHE_VERSION = 1


#: Longest definition path (characters) and longest segment of one.
MAX_PATH_LENGTH = 512
MAX_SEGMENT_LENGTH = 255
#: A definition's path, relative to the folder: segments of letters, digits, '.', '_' and '-', each
#: starting with a letter, digit or '_', joined by '/', ending in .yaml or .yml. Paths reach generated
#: Python (the stubs), Airflow's UI, logs and shells: nothing else is let through (issue 12, item 5).
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
PATH_PATTERN = re.compile(rf"(?:{_SEGMENT}/)*{_SEGMENT}\.(?:yaml|yml)")
_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9._/-]*")
PATH_RULE = (
    "letters, digits, '.', '_', '-' and '/' only; no segment may be empty or start with '.' or '-'; "
    "it must end in .yaml or .yml"
)


def is_definition_candidate(rel: str) -> bool:
    """Whether a file at ``rel`` is meant as a definition: ends in .yaml/.yml, not hidden, not under
    schema/, templates/ or specs/ (whether its name is allowed is :func:`path_problem`'s business)."""
    parts = Path(rel).parts
    return (
        rel.endswith(SUFFIXES)
        and not any(p.startswith(".") for p in parts)
        and not (len(parts) > 1 and parts[0] in RESERVED_DIRS)
        and not any(p in RESERVED_DIRS for p in parts[:-1])
    )


def path_problem(rel: str) -> str | None:
    """Why ``rel`` is not an allowed definition path (a message that never repeats the path), or None."""
    if len(rel) > MAX_PATH_LENGTH:
        return f"it is longer than {MAX_PATH_LENGTH} characters"
    bad = _PATH_CHARACTERS.fullmatch(rel) is None
    if bad:
        char = next(ch for ch in rel if not _PATH_CHARACTERS.fullmatch(ch))
        return f"it contains the character U+{ord(char):04X}; allowed: {PATH_RULE}"
    if any(len(part) > MAX_SEGMENT_LENGTH for part in rel.split("/")):
        return f"a segment is longer than {MAX_SEGMENT_LENGTH} characters"
    if not PATH_PATTERN.fullmatch(rel):
        return f"allowed: {PATH_RULE}"
    return None


def is_definition_path(rel: str) -> bool:
    """A definition the folder serves: meant as one, and named within the allowed alphabet."""
    return is_definition_candidate(rel) and path_problem(rel) is None


def encode_path(rel: str) -> str:
    """``rel`` with every character outside the path alphabet percent-encoded (UTF-8; bytes that are
    not UTF-8 as themselves): how a file with a name that is not allowed is shown and named, in
    diagnostics, the API and the CLI. The encoded form of such a name is never an allowed path."""
    try:
        return quote(rel, safe="/", errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no file name can hold (it came from JSON): shown only
        return quote(rel, safe="/", errors="surrogatepass")


def decode_path(encoded: str) -> str:
    """The file name :func:`encode_path` encoded."""
    return unquote(encoded, errors="surrogateescape")


def misnamed_diagnostic(display: str, rel: str) -> Diagnostic:
    """The error a definition file whose name is not allowed gets instead of being loaded."""
    encoded = encode_path(rel)
    return Diagnostic(
        display,
        1,
        1,
        f"not loaded: the file name is not allowed ({path_problem(rel)}); rename the file, or delete it "
        f"(autopilot delete --encoded {encoded}, or DELETE /autopilot/api/v1/definitions?encoded=...)",
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
        validated_dir: Path | None = None,
    ):
        self.root = Path(root).resolve()
        self.index_path = index_path
        # Where passed checks are remembered; used only with a trusted index (its fingerprint says
        # what state of the folder the checks saw).
        self.validated_dir = validated_dir
        self._fingerprint: str | None = None
        self._remote = False
        # While Airflow parses stubs, the index that the bundle's last refresh wrote is the truth:
        # re-walking the folder for every stub would make parsing N definitions cost O(N²).
        self.trust_index = trust_index
        self.display_root = self.root.name if display_root is None else display_root
        self._index: dict[str, IndexEntry] | None = None
        self._misnamed: list[str] | None = None
        self._cached_misnamed: list[str] = []
        self._loaded: dict[str, Loaded] = {}
        self._loading: list[str] = []
        self._parsed: dict[str, Loaded] = {}

    # -- files and index ---------------------------------------------------------------------

    def display(self, rel: str) -> str:
        return f"{self.display_root}/{rel}" if self.display_root else rel

    def files(self) -> list[str]:
        """The definition files, relative to the root (only those with an allowed name)."""
        return self._walk()[0]

    def misnamed(self) -> list[str]:
        """Files meant as definitions whose names are not allowed (:func:`path_problem`): never loaded,
        each reported by :meth:`misnamed_diagnostics` instead."""
        if self._misnamed is None:
            cached = self._read_index() if self.trust_index else {}
            self._misnamed = list(self._cached_misnamed) if cached else self._walk()[1]
        return self._misnamed

    def misnamed_diagnostics(self) -> list[Diagnostic]:
        return [misnamed_diagnostic(self.display(encode_path(rel)), rel) for rel in self.misnamed()]

    def _walk(self) -> tuple[list[str], list[str]]:
        found, misnamed = [], []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and not (rel_dir == "." and d in RESERVED_DIRS)
            )
            for name in filenames:
                rel = os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")
                if is_definition_candidate(rel):
                    (found if path_problem(rel) is None else misnamed).append(rel)
        self._misnamed = sorted(misnamed)
        return sorted(found), self._misnamed

    def index(self) -> dict[str, IndexEntry]:
        """rel path → (mtime, size, kind, id); re-reads only files whose mtime or size changed."""
        if self._index is not None:
            return self._index
        cached = self._read_index()
        if self.trust_index and cached:
            self._index = cached
            return cached
        self._fingerprint = None
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
        if not self.index_path:
            return {}
        try:
            stat = self.index_path.stat()
        except OSError:
            return {}
        # Parsing stubs, one process reads the same index once per stub: read it once per process.
        # (A trusted index is never changed by a Project; a rewritten one has a new mtime.)
        seen = (str(self.index_path), str(self.root), stat.st_mtime_ns, stat.st_size)
        if self.trust_index and _INDEXES.get(seen) is not None:
            files, self._fingerprint, self._cached_misnamed = _INDEXES[seen]
            return files
        try:
            raw = json.loads(self.index_path.read_text())
            if raw.get("version") != INDEX_VERSION or raw.get("root") != str(self.root):
                return {}
            files = {rel: IndexEntry(**entry) for rel, entry in raw["files"].items() if is_definition_path(rel)}
            self._fingerprint = raw.get("fingerprint") if isinstance(raw.get("fingerprint"), str) else None
            misnamed = raw.get("misnamed", [])
            self._cached_misnamed = (
                sorted(m for m in misnamed if isinstance(m, str)) if isinstance(misnamed, list) else []
            )
        except (OSError, ValueError, TypeError, KeyError):
            return {}
        if self.trust_index:
            _INDEXES.clear()
            _INDEXES[seen] = (files, self._fingerprint, self._cached_misnamed)
        return files

    def write_index(self) -> None:
        if not self.index_path:
            return
        data = {
            "version": INDEX_VERSION,
            "root": str(self.root),
            "files": {rel: vars(entry) for rel, entry in self.index().items()},
            "misnamed": self.misnamed(),
            "fingerprint": tree_fingerprint(self.root),
        }
        atomic_write(self.index_path, json.dumps(data, sort_keys=True))

    # -- loading -----------------------------------------------------------------------------

    def load(self, rel: str) -> Loaded:
        """Load and fully validate one file (cached for the life of this Project)."""
        if rel in self._loaded:
            return self._loaded[rel]
        text = read_text(self.root / rel)
        key = self._validation_key(rel, text)
        if key is not None:
            passed = _PASSED.get(key)
            if passed is None:
                # checked before with this text and this folder: only the model is built again
                passed = self._passed_before(rel, text, key)
            if passed is not None:
                _remember(key, passed)
                self._loaded[rel] = passed
                return passed
        outer, self._remote = self._remote, False
        loaded = self._check(rel, text, cache=True)
        remote, self._remote = self._remote, outer or self._remote
        if key is not None and loaded.ok and not remote:
            _remember(key, loaded)
            assert loaded.located is not None
            data = loaded.located.data
            try:
                # the data too (when JSON keeps it exactly), so that a re-parse skips the YAML
                saved = json.dumps(data)
                if json.loads(saved) != data:
                    saved = "null"
            except (TypeError, ValueError):
                saved = "null"
            try:
                # not synced to disk: a marker lost or torn by a crash fails to parse or to match its
                # key, and the file is simply checked again
                atomic_write(self._marker_path(rel), f'{{"key": {json.dumps(key)}, "data": {saved}}}', durable=False)
            except OSError:  # a read-only bundle folder: no cache, same result
                pass
        return loaded

    # -- the validation cache ------------------------------------------------------------------

    def _validation_key(self, rel: str, text: str) -> str | None:
        if self.validated_dir is None or not self.trust_index:
            return None
        self.index()
        if self._fingerprint is None:
            return None
        digest = hashlib.sha256()
        for part in (
            str(VALIDATION_CACHE_VERSION),
            _code_version(),
            self._fingerprint,
            str(self.root),
            self.display(rel),
        ):
            digest.update(part.encode() + b"\0")
        digest.update(text.encode("utf-8"))
        return digest.hexdigest()

    def _marker_path(self, rel: str) -> Path:
        assert self.validated_dir is not None
        return self.validated_dir / (rel + ".ok")

    def _passed_before(self, rel: str, text: str, key: str) -> Loaded | None:
        """The file as loaded when it passed its checks with this very key (text, folder, code), or
        None. Its model is built again from the data saved then (or the text): the same model."""
        try:
            marker = json.loads(read_text(self._marker_path(rel)))
        except (OSError, ValueError):
            return None
        if not isinstance(marker, dict) or marker.get("key") != key:
            return None
        data = marker.get("data")
        if data is None:
            loaded = load_text(text, self.display(rel))
            return loaded if loaded.ok else None
        return load_data(data, self.display(rel))

    def check_text(self, rel: str, text: str) -> Loaded:
        """Validate text as if it were saved at ``rel`` (nothing is written)."""
        return self._check(rel, text, cache=False)

    def _check(self, rel: str, text: str, *, cache: bool) -> Loaded:
        self._loading.append(rel)
        try:
            loaded = load_text(text, self.display(rel))
            validate(loaded, self.function)
            if loaded.definition is not None:
                loaded.diagnostics.extend(project_diagnostics(loaded, self))
                loaded.diagnostics.extend(self._api_file_problems(rel, loaded))
            loaded.diagnostics.sort()
        finally:
            self._loading.pop()
        if cache:
            self._loaded[rel] = loaded
        return loaded

    def _api_file_problems(self, rel: str, loaded: Loaded) -> list[Diagnostic]:
        """An Api's ``spec:`` names a regular file inside this folder, of a bounded size (a missing
        file is reported where the document is used)."""
        if loaded.kind != "Api" or loaded.located is None:
            return []
        problem = spec_file_problem(self.root, rel, loaded.definition.spec)
        return [loaded.located.diagnostic(("spec",), problem)] if problem else []

    def parsed(self, rel: str) -> Loaded:
        """The file's model without the checks (cached): what a check needs to follow references
        between definitions that may lead back to the one being checked (a workflow that starts
        another), where :meth:`load` would check that one again."""
        if rel in self._loaded:
            return self._loaded[rel]
        found = self._parsed.get(rel)
        if found is None:
            found = self._parsed[rel] = load_text(read_text(self.root / rel), self.display(rel))
        return found

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
        return next((rel for rel, entry_id in self._files_of(kind) if entry_id == ident), None)

    def ids(self, kind: str) -> list[str]:
        return sorted(ident for _, ident in self._files_of(kind) if ident)

    def of_kind(self, kind: str) -> list[Loaded]:
        return [self.load(rel) for rel, _ in self._files_of(kind)]

    def _files_of(self, kind: str) -> list[tuple[str, str | None]]:
        """(rel, id) of the files of one kind, in index order. Loading one definition asks for
        functions, Apis and Contacts several times, and parsing stubs does that for every definition:
        a walk of the whole index each time would make a DagBag of N definitions cost O(N²)."""
        index = self.index()
        found = _KINDS.get(id(index))
        if found is None or found[0] is not index:
            if len(_KINDS) >= 8:
                _KINDS.clear()
            found = _KINDS[id(index)] = (index, {})
        by_kind = found[1]
        files = by_kind.get(kind)
        if files is None:
            files = by_kind[kind] = [(rel, entry.id) for rel, entry in index.items() if entry.kind == kind]
        return files

    def load_all(self) -> dict[str, Loaded]:
        return {rel: self.load(rel) for rel in self.index()}

    def resource_items(self) -> list[Any]:
        """Every item of the valid `Resources` definitions (the inventory), in file order."""
        return [item for loaded in self.of_kind("Resources") if loaded.ok for item in loaded.definition.items]

    def resource_types(self) -> list[str]:
        return sorted({item.type for item in self.resource_items()})

    def duplicate_ids(self) -> list[Diagnostic]:
        """Two files defining the same kind and id. Workflow and trigger ids are DAG ids: one
        namespace, so a trigger may not take a workflow's id either."""
        seen: dict[tuple[str, str], tuple[str, str]] = {}
        problems = []
        for rel, entry in sorted(self.index().items()):
            if not entry.kind or not entry.id:
                continue
            key = ("DAG" if entry.kind in DAG_KINDS else entry.kind, entry.id)
            if key in seen:
                first, kind = seen[key]
                what = f"{entry.kind} id '{entry.id}' is already" + (
                    " defined" if kind == entry.kind else f" the id of the {kind} (a DAG id)"
                )
                problems.append(Diagnostic(self.display(rel), 1, 1, f"{what} in {self.display(first)}"))
            else:
                seen[key] = (rel, entry.kind)
        return problems

    def api_spec(self, api_id: str) -> tuple[Loaded, Spec | None] | None:
        """(Loaded Api definition, Spec) for an Api id, or None when there is no such Api.

        The spec path in the Api definition is relative to that definition's file and lies inside the
        definitions folder (:func:`autopilot_provider.openapi.sources.spec_path`): nothing is fetched
        over the network and nothing outside the folder is read. Raises ``SpecError`` when the
        document cannot be read or is not OpenAPI.
        """
        rel = self.find("Api", api_id)
        if rel is None:
            return None
        loaded = self.load(rel)
        if not loaded.ok:
            return loaded, None
        try:
            source = spec_path(self.root, rel, loaded.definition.spec)
        except SourceError as exc:
            raise SpecError(exc.message, "") from None
        return loaded, cached_spec(str(source))

    def unknown_function_hint(self, name: str) -> str:
        hint = suggest(name, self.ids("Function"))
        unreadable = sorted(rel for rel, entry in self.index().items() if entry.kind is None)
        if not hint and unreadable:
            hint = f" (these definition files could not be read: {', '.join(unreadable[:5])})"
        return hint


def cached_spec(source: str):
    """Load (without re-validating: import validated it) and cache a spec per process, keyed on the
    file's mtime and size so an edited document is re-read."""

    try:
        stat = os.stat(source)
        key = (source, stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (source, 0, 0)
    if key not in _SPECS:
        _SPECS[key] = load_spec(source, validate=False)
    return _SPECS[key]


_SPECS: dict[tuple[str, int, int], Any] = {}

#: The last trusted index read in this process: (path, root, mtime, size) → (files, fingerprint).
_INDEXES: dict[tuple[str, str, int, int], tuple[dict[str, IndexEntry], str | None, list[str]]] = {}

#: An index (held, so that its id stays its own) and the (rel, id) of its files by kind (filled as kinds
#: are asked for), by the index's id. An index is never changed once built: a Project makes a new one.
_KINDS: dict[int, tuple[dict[str, IndexEntry], dict[str, list[tuple[str, str | None]]]]] = {}

#: Files that passed their checks in this process, by validation key (one model per file and folder
#: state, shared by the Projects of one DagBag: each stub makes its own Project).
_PASSED: dict[str, Loaded] = {}


def _remember(key: str, loaded: Loaded) -> None:
    if loaded.kind == "Workflow":
        # nothing loads a workflow but its own stub; keeping the models of a whole DagBag would
        # only make the garbage collector's full passes slower
        return
    if len(_PASSED) > 4096:
        _PASSED.clear()
    _PASSED[key] = loaded


def tree_fingerprint(
    root: Path,
    *,
    folder: Callable[[str], bool] = lambda name: not name.startswith("."),
    file: Callable[[str, str], bool] = lambda dirpath, name: not name.startswith("."),
) -> str:
    """Name, mtime and size of every file under ``root`` (templates and API documents included), or
    of those in the folders and files the filters take (``file`` gets the folder's path and the name)."""
    digest = hashlib.sha256()
    top = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if folder(d))
        # a file's path relative to ``top`` is its folder's (once per folder) and its name: the same
        # string as os.path.relpath per file, which costs more than the stat
        inside = os.path.relpath(dirpath, top) if dirpath != top else ""
        for name in sorted(filenames):
            if not file(dirpath, name):
                continue
            try:
                stat = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            rel = os.path.join(inside, name) if inside else name
            digest.update(f"{rel}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
    return digest.hexdigest()


@functools.cache
def _code_version() -> str:
    """The installed checks: name, mtime and size of Autopilot's modules (a new version → new keys)."""

    digest = hashlib.sha256()
    for package in (Path(autopilot_provider.__file__).parent, Path(__file__).parent):
        for path in sorted(package.rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
    return digest.hexdigest()


def atomic_write(path: Path, text: str, *, durable: bool = True) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file.
    ``durable``: sync the data to disk first, so that it survives a crash (a cache need not).

    Plain system calls (no buffered file object) and the folder made only when missing: parsing
    writes a file per definition, and on a busy machine each extra call shows."""
    data = text.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(tmp, flags, 0o666)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_text(path: Path) -> str:
    """``path.read_text(encoding="utf-8")`` in fewer system calls (parsing reads a few small files
    per definition): the same text, newlines translated alike, the same kinds of errors."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        return path.read_text(encoding="utf-8")  # raises the very error a text read raises
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


__all__: list[Any] = ["Project", "atomic_write", "is_definition_path"]


def contacts_directory(definitions: str | Path | None) -> Directory:
    """The people and groups of the definitions folder (an empty directory without a folder)."""
    if not definitions:
        return Directory()
    return Directory.from_project(Project(Path(definitions)))
