"""One tiny generated Python module per definition file.

Airflow's dag-processor only discovers ``.py`` files, and a module that raises loses all of its DAGs
— so each definition gets its own module. A broken definition then shows as its own import error
(naming ``file:line:col``) while every other definition keeps loading. Stubs are derived data:
``AutopilotDagBundle`` regenerates them from ``definitions/`` on every refresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from autopilot_provider.repository.folder import (
    INDEX_VERSION,
    Project,
    atomic_write,
    is_definition_path,
    tree_fingerprint,
)

INDEX_NAME = "_autopilot_index.json"
#: What the last sync saw and left (see ``stubs_up_to_date``).
SYNCED_NAME = "_autopilot_synced.json"
STUB_SUFFIX = ".py"

# Nothing from the definitions folder is written here but through repr(): no name in the comments
# (a comment cannot be escaped), the path and the root as string literals. The path has passed
# ``is_definition_path`` too (the index holds no other), so the stub's name is safe as well.
_TEMPLATE = """\
# Autopilot: the Airflow DAG for the definition named below (sha256 {digest}).
# Generated from the definition; edit the YAML, not this file.
from dag_factory.loader import load_dag_file

dag = load_dag_file({root!r}, {rel!r}, __file__)
"""
#: The module that reports the definition files whose names are not allowed (one import error for
#: all of them, naming each percent-encoded); only present while there are such files.
MISNAMED_STUB = "_autopilot_misnamed_files.py"
_MISNAMED_TEMPLATE = """\
# Autopilot: definition files whose names are not allowed; they are not loaded (see the import error).
# (Airflow parses a file only when it mentions both "airflow" and "dag", as this line does.)
from dag_factory.loader import report_misnamed

report_misnamed({root!r}, __file__)
"""


def stub_name(rel: str) -> str:
    """definitions/backups/add.yaml → backups/add.yaml.py (keeps the source visible in Airflow's UI)."""
    return rel + STUB_SUFFIX


def validated_dir(stubs: Path) -> Path:
    """Where stub parsing remembers which definitions passed their checks (next to the stubs, not
    in them: Airflow lists every file of a DAG folder)."""
    return stubs.with_name(stubs.name + ".validated")


def sync_stubs(definitions: Path, stubs: Path) -> Project:
    """Make ``stubs`` hold exactly one module per definition file; rewrite only what changed."""
    stubs.mkdir(parents=True, exist_ok=True)
    # before anything is read: a file changed while this runs makes the next check see a change
    source = _source_state(definitions, stubs)
    project = Project(definitions, index_path=stubs / INDEX_NAME)
    wanted: set[Path] = set()
    generated: dict[Path, str] = {}
    for rel in project.index():
        if not is_definition_path(rel):  # the index holds none: a second lock on the same door
            continue
        digest = hashlib.sha256((project.root / rel).read_bytes()).hexdigest()[:16]
        generated[stubs / stub_name(rel)] = _TEMPLATE.format(rel=rel, digest=digest, root=str(project.root))
    if project.misnamed():
        generated[stubs / MISNAMED_STUB] = _MISNAMED_TEMPLATE.format(root=str(project.root))
    for target, text in generated.items():
        wanted.add(target)
        try:
            if target.read_text(encoding="utf-8") == text:
                continue
        except FileNotFoundError:
            pass
        atomic_write(target, text)
    for dirpath, _, filenames in os.walk(stubs):
        for name in filenames:
            path = Path(dirpath) / name
            if name.endswith(STUB_SUFFIX) and path not in wanted:
                path.unlink()
    checked = validated_dir(stubs)
    for dirpath, _, filenames in os.walk(checked):
        for name in filenames:
            path = Path(dirpath) / name
            if os.path.relpath(path, checked).removesuffix(".ok") not in project.index():
                path.unlink(missing_ok=True)
    project.write_index()
    # only a hint (a lost or torn one means a full sync next time): not synced to disk
    atomic_write(stubs / SYNCED_NAME, json.dumps({"source": source, "stubs": _stubs_state(stubs)}), durable=False)
    return project


def stubs_up_to_date(definitions: Path, stubs: Path) -> bool:
    """Whether ``stubs`` are exactly what ``sync_stubs`` left and nothing in ``definitions`` changed
    since it started: every file's name, mtime and size — the same test the index and the cache of
    passed checks rely on — and the stubs' too. A worker starting a task syncs only when not, instead
    of reading every definition and stub each time."""
    try:
        synced = json.loads((stubs / SYNCED_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(synced, dict)
        and synced.get("source") == _source_state(definitions, stubs)
        and synced.get("stubs") == _stubs_state(stubs)
    )


def _source_state(definitions: Path, stubs: Path) -> str:
    """The definitions folder's state, where stubs of it go, and how they are written."""
    digest = hashlib.sha256()
    for part in (str(definitions.resolve()), str(stubs.resolve()), _TEMPLATE, _MISNAMED_TEMPLATE, str(INDEX_VERSION)):
        digest.update(part.encode() + b"\0")
    digest.update(tree_fingerprint(definitions.resolve()).encode())
    return digest.hexdigest()


def _stubs_state(stubs: Path) -> str:
    """Name, mtime and size of the stubs and the index (what Airflow imports, not its bytecode)."""
    top = str(stubs)
    return tree_fingerprint(
        stubs,
        folder=lambda name: name != "__pycache__",
        file=lambda dirpath, name: name.endswith(STUB_SUFFIX) or (name == INDEX_NAME and dirpath == top),
    )
