"""The distribution ships the built UI: plugins/ui_dist is not in git (it is built by `make ui`), so
only this test guarantees that a wheel made from the checkout (`make dist`) carries it.

The package is built from a copy of the checkout's sources (no build/ or egg-info left in the
checkout, where Airflow would see the distribution twice) with `python -m build --no-isolation`
(sdist, then the wheel from that sdist — so the sdist carries the UI too), in a temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from autopilot_plugin import ui

# checks no metadata database: run once, in the SQLite pass of make test
pytestmark = pytest.mark.db_independent

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["setup.cfg", "pyproject.toml", "README.md", "autopilot_provider", "dag_factory", "plugins"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    if not (ui.DIST / "index.html").is_file():
        message = "the UI is not built (make ui)"
        if os.environ.get("AUTOPILOT_REQUIRE_E2E"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("packaging")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".built")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    out = root / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_the_wheel_ships_the_built_ui(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        index = wheel.read("autopilot_plugin/ui_dist/index.html").decode()
    scripts = [n for n in names if re.fullmatch(r"autopilot_plugin/ui_dist/assets/[^/]+\.js", n)]
    assert scripts, sorted(n for n in names if "ui_dist" in n)
    # every asset index.html loads is in the wheel (a stale or partial build would miss one)
    referenced = re.findall(r'(?:src|href)="(?:\./|/)?(assets/[^"]+)"', index)
    assert any(r.endswith(".js") for r in referenced), index
    missing = [r for r in referenced if f"autopilot_plugin/ui_dist/{r}" not in names]
    assert not missing, f"index.html refers to assets the wheel lacks: {missing}"
    # and what the app is made of besides: the plugin, its API, the provider
    assert {
        "autopilot_plugin/ui.py",
        "autopilot_plugin/api/routes/workflows.py",
        "autopilot_provider/__init__.py",
    } <= names
    assert not any(n.endswith("/.built") for n in names)


def test_the_sdist_ships_the_built_ui(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = sdist.getnames()
    assert any(n.endswith("/plugins/ui_dist/index.html") for n in names), names
