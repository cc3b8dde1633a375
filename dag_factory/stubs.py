"""One tiny generated Python module per definition file.

Airflow's dag-processor only discovers ``.py`` files, and a module that raises loses all of its DAGs
— so each definition gets its own module. A broken definition then shows as its own import error
(naming ``file:line:col``) while every other definition keeps loading. Stubs are derived data:
``AutopilotDagBundle`` regenerates them from ``definitions/`` on every refresh.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dag_factory.project import Project, atomic_write

INDEX_NAME = "_autopilot_index.json"
STUB_SUFFIX = ".py"

_TEMPLATE = """\
# Autopilot: the Airflow DAG for {rel} (sha256 {digest}).
# Generated from the definition; edit the YAML, not this file.
from dag_factory.loader import load_dag_file

dag = load_dag_file({root!r}, {rel!r}, __file__)
"""


def stub_name(rel: str) -> str:
    """definitions/backups/add.yaml → backups/add.yaml.py (keeps the source visible in Airflow's UI)."""
    return rel + STUB_SUFFIX


def sync_stubs(definitions: Path, stubs: Path) -> Project:
    """Make ``stubs`` hold exactly one module per definition file; rewrite only what changed."""
    stubs.mkdir(parents=True, exist_ok=True)
    project = Project(definitions, index_path=stubs / INDEX_NAME)
    wanted: set[Path] = set()
    for rel in project.index():
        target = stubs / stub_name(rel)
        wanted.add(target)
        digest = hashlib.sha256((project.root / rel).read_bytes()).hexdigest()[:16]
        text = _TEMPLATE.format(rel=rel, digest=digest, root=str(project.root))
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
    project.write_index()
    return project
