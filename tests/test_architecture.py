"""The layers of docs/architecture.md hold: the import contracts (import-linter, pyproject.toml) are kept,
a forbidden import breaks them with a message naming both modules, the import graph has no cycle, and
no module defers an import of the project's own code to dodge one."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.db_independent

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CYCLES = ROOT / "scripts" / "import_cycles.py"
OWN = ("autopilot_provider", "dag_factory", "autopilot_plugin")


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIRFLOW_HOME": str(cwd / ".airflow")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def copy_of_the_code(tmp_path: Path) -> Path:
    """The three packages and the contracts, copied as an importable tree (plugins/ as autopilot_plugin)."""
    ignore = shutil.ignore_patterns("__pycache__", "ui_dist", "node_modules", "*.pyc")
    shutil.copytree(ROOT / "autopilot_provider", tmp_path / "autopilot_provider", ignore=ignore)
    shutil.copytree(ROOT / "dag_factory", tmp_path / "dag_factory", ignore=ignore)
    shutil.copytree(ROOT / "plugins", tmp_path / "autopilot_plugin", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    text = module.read_text(encoding="utf-8")
    marker = "from __future__ import annotations\n"
    assert marker in text
    module.write_text(text.replace(marker, f"{marker}\n{statement}  # noqa: F401\n", 1), encoding="utf-8")


def test_the_import_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_worker_module_importing_api_server_code_breaks_the_build(copy_of_the_code):
    add_import(
        copy_of_the_code / "autopilot_provider" / "operators" / "script.py", "import autopilot_provider.server.tables"
    )
    result = lint_imports(copy_of_the_code, pythonpath=copy_of_the_code)
    assert result.returncode == 1, result.stdout + result.stderr
    out = " ".join(result.stdout.split())  # import-linter wraps long lines
    assert "Layers import only downward (docs/architecture.md) BROKEN" in out
    assert "autopilot_provider.operators.script -> autopilot_provider.server.tables" in out


def test_the_definition_format_importing_airflow_breaks_the_build(copy_of_the_code):
    add_import(copy_of_the_code / "autopilot_provider" / "definitions" / "models.py", "import airflow")
    result = lint_imports(copy_of_the_code, pythonpath=copy_of_the_code)
    assert result.returncode == 1, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "autopilot_provider.definitions.models -> airflow" in out


def test_the_import_graph_has_no_cycle():
    result = subprocess.run([sys.executable, str(CYCLES), str(ROOT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    assert " 0 cycles" in result.stdout


def test_a_cycle_is_found_and_shown(copy_of_the_code):
    (copy_of_the_code / "plugins").symlink_to(copy_of_the_code / "autopilot_plugin")
    add_import(
        copy_of_the_code / "autopilot_provider" / "definitions" / "errors.py",
        "from autopilot_provider.definitions import validate",
    )
    result = subprocess.run(
        [sys.executable, str(CYCLES), str(copy_of_the_code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "autopilot_provider.definitions.errors" in result.stdout
    assert "autopilot_provider.definitions.validate" in result.stdout


def function_local_imports(path: Path) -> list[str]:
    """``file:line: import`` of each import of the project's own modules made inside a function or class."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.col_offset and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.Import) and node.col_offset:
            names = [alias.name for alias in node.names]
        else:
            continue
        if any(name.split(".")[0] in OWN for name in names):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {', '.join(names)}")
    return found


def test_no_module_defers_an_import_of_the_project_s_own_code():
    """A deferred import hides a cycle or a layer violation; the one lazy load for start-up cost is the
    compiler table (dag_factory/registry.py), which loads by name through importlib."""
    found = []
    for folder in ("autopilot_provider", "dag_factory", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "node_modules" not in path.parts:
                found += function_local_imports(path)
    assert found == []
