"""What the provider declares is what the code has: every ``[autopilot]`` option is read through
``autopilot_provider.config`` and declared (description, type, default) in ``get_provider_info``, every
declared option is read somewhere, and every operator, hook, trigger and notification module is
declared. The checks read the source (no Airflow database), so a new option or module that skips the
declaration fails here, naming the file and line."""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import airflow
import jsonschema
import pytest

from autopilot_provider import config
from autopilot_provider.get_provider_info import get_provider_info

pytestmark = pytest.mark.db_independent

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("autopilot_provider", "dag_factory", "plugins")
SKIP_DIRS = {"__pycache__", "node_modules", "ui_dist"}
CONFIG_MODULE = "autopilot_provider.config"
CONFIG_FILE = ROOT / "autopilot_provider" / "config.py"
SECTION = "autopilot"

#: Methods of Airflow's configuration parser that read an option (``conf.get("autopilot", ...)``).
PARSER_READS = {
    "get",
    "getboolean",
    "getint",
    "getfloat",
    "getlist",
    "getjson",
    "getimport",
    "getsection",
    "getenum",
    "getenumlist",
    "gettimedelta",
    "has_option",
    "get_mandatory_value",
    "get_mandatory_list_value",
}
#: ``autopilot_provider.config``'s readers, and the option type each one expects (None: any).
CONFIG_READS = {"get": None, "get_list": "string", "get_bool": "boolean", "get_int": "integer", "get_float": "float"}

OPTIONS = get_provider_info()["config"][SECTION]["options"]


def python_files() -> Iterator[Path]:
    for source in SOURCES:
        for path in sorted((ROOT / source).rglob("*.py")):
            if not SKIP_DIRS & set(path.relative_to(ROOT).parts):
                yield path


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def string_constants(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level ``NAME = "text"`` assignments, and tables ``NAME = {key: "text", ...}`` (so that
    ``conf.get(SECTION, ...)`` and ``config.get_list(OPTIONS[kind])`` are seen too): name → the texts."""
    found = {}
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            texts = [value.value]
        elif isinstance(value, ast.Dict):
            texts = [v.value for v in value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = texts
    return found


def texts_of(node: ast.AST | None, constants: dict[str, list[str]]) -> list[str]:
    """The texts an argument can be: a literal, a module constant, or any value of a module table."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name):
        return constants.get(node.id, [])
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        return constants.get(node.value.id, [])
    return []


def direct_reads(path: Path, tree: ast.Module) -> list[str]:
    """Reads of an ``[autopilot]`` option that go around ``autopilot_provider.config``: Airflow's
    parser called with the section, or the ``AIRFLOW__AUTOPILOT__*`` environment variables."""
    constants = string_constants(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PARSER_READS:
            section = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "section"), None)
            if SECTION in [text.lower() for text in texts_of(section, constants)]:
                found.append(f"{where(path, node)}: {ast.unparse(node)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.upper().startswith(f"AIRFLOW__{SECTION.upper()}__"):
                found.append(f"{where(path, node)}: {node.value!r}")
    return found


def config_names(path: Path, tree: ast.Module) -> tuple[set[str], dict[str, str]]:
    """What ``autopilot_provider.config`` is called in this module: names bound to the module, and
    names bound to its readers (local name → reader). In config.py itself, its own functions."""
    modules: set[str] = set()
    readers: dict[str, str] = {}
    if path == CONFIG_FILE:
        return modules, {name: name for name in CONFIG_READS}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "autopilot_provider":
            modules |= {alias.asname or alias.name for alias in node.names if alias.name == "config"}
        elif isinstance(node, ast.ImportFrom) and node.module == CONFIG_MODULE:
            readers |= {alias.asname or alias.name: alias.name for alias in node.names if alias.name in CONFIG_READS}
        elif isinstance(node, ast.Import):
            modules |= {alias.asname for alias in node.names if alias.name == CONFIG_MODULE and alias.asname}
    return modules, readers


def options_read(path: Path, tree: ast.Module) -> list[tuple[str, str, str]]:
    """``(where, option, reader)`` for every call of a ``config`` reader with an option name, and for
    ``declared()["name"]`` in config.py."""
    modules, readers = config_names(path, tree)
    constants = string_constants(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            reader = None
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules:
                reader = func.attr if func.attr in CONFIG_READS else None
            elif isinstance(func, ast.Name):
                reader = readers.get(func.id)
            if reader is not None:
                found += [(where(path, node), name, reader) for name in texts_of(node.args[0], constants)]
        elif path == CONFIG_FILE and isinstance(node, ast.Subscript):
            call = node.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "declared":
                found += [(where(path, node), name, "get") for name in texts_of(node.slice, constants)]
    return found


@pytest.fixture(scope="module")
def parsed() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"), str(path))) for path in python_files()]


def test_the_provider_info_is_what_airflow_accepts():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(get_provider_info(), schema)


def test_autopilot_options_are_read_only_through_the_config_module(parsed):
    found = [read for path, tree in parsed if path != CONFIG_FILE for read in direct_reads(path, tree)]
    assert not found, "read [autopilot] options through autopilot_provider.config instead:\n" + "\n".join(found)


def test_every_option_the_code_reads_is_declared_with_description_type_and_default(parsed):
    problems = []
    for path, tree in parsed:
        for place, name, reader in options_read(path, tree):
            option = OPTIONS.get(name)
            if option is None:
                problems.append(f"{place}: [autopilot] {name} is not declared in get_provider_info")
                continue
            if not (option.get("description") or "").strip():
                problems.append(f"{place}: [autopilot] {name} has no description")
            if "default" not in option or "type" not in option:
                problems.append(f"{place}: [autopilot] {name} declares no default or no type")
            expected = CONFIG_READS[reader]
            if expected is not None and option.get("type") != expected:
                problems.append(
                    f"{place}: [autopilot] {name} is read with {reader}() but declared {option.get('type')}"
                )
    assert not problems, "\n".join(problems)


def test_every_declared_option_is_read_somewhere(parsed):
    read = {name for path, tree in parsed for _, name, _ in options_read(path, tree)}
    unread = sorted(set(OPTIONS) - read)
    assert not unread, f"declared in get_provider_info but read nowhere through autopilot_provider.config: {unread}"


def is_shim(path: Path) -> bool:
    """A deprecated old path: a module that warns with DeprecationWarning when imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if "DeprecationWarning" in ast.unparse(node.value) and ast.unparse(node.value.func).endswith("warn"):
                return True
    return False


def modules_of(package: str) -> list[str]:
    folder = ROOT / "autopilot_provider" / package
    return [
        f"autopilot_provider.{package}.{path.stem}"
        for path in sorted(folder.glob("*.py"))
        if path.stem != "__init__" and not path.stem.startswith("_") and not is_shim(path)
    ]


def declared_modules(kind: str) -> set[str]:
    info = get_provider_info()
    if kind == "notifications":
        return {name.rpartition(".")[0] for name in info.get(kind, [])}
    return {module for entry in info.get(kind, []) for module in entry["python-modules"]}


@pytest.mark.parametrize("kind", ["operators", "hooks", "triggers", "notifications"])
def test_every_module_of_a_kind_is_declared_in_the_provider_info(kind):
    missing = sorted(set(modules_of(kind)) - declared_modules(kind))
    assert not missing, f"add to get_provider_info()[{kind!r}]: {missing}"


@pytest.mark.parametrize("kind", ["operators", "hooks", "triggers", "notifications", "bundles"])
def test_every_declared_module_imports(kind):
    for module in sorted(declared_modules(kind)):
        importlib.import_module(module)
    for name in get_provider_info().get("notifications", []) if kind == "notifications" else []:
        module, _, cls = name.rpartition(".")
        assert hasattr(importlib.import_module(module), cls), name


def test_the_scan_sees_reads_around_the_config_module_and_through_it():
    source = (
        "import os\n"
        "from airflow.configuration import conf\n"
        "from autopilot_provider import config as c\n"
        "from autopilot_provider.config import get_bool\n"
        "SECTION = 'autopilot'\n"
        "a = conf.getint(SECTION, 'max_request_bytes')\n"
        "b = os.environ.get('AIRFLOW__AUTOPILOT__DEFINITIONS_DIR')\n"
        "d = c.get_list('designer_roles')\n"
        "e = get_bool('allow_self_approval')\n"
        "ROLES = {'design': 'designer_roles', 'code': 'code_author_roles'}\n"
        "g = c.get_list(ROLES[kind])\n"
        "f = conf.get('core', 'dags_folder')\n"
    )
    path = ROOT / "autopilot_provider" / "example.py"
    tree = ast.parse(source)
    assert [read.split(": ")[0] for read in direct_reads(path, tree)] == [
        "autopilot_provider/example.py:6",
        "autopilot_provider/example.py:7",
    ]
    assert [(name, reader) for _, name, reader in options_read(path, tree)] == [
        ("designer_roles", "get_list"),
        ("allow_self_approval", "get_bool"),
        ("designer_roles", "get_list"),
        ("code_author_roles", "get_list"),
    ]


def test_reading_an_undeclared_option_is_an_error():
    with pytest.raises(KeyError):
        config.get("no_such_option")


def test_an_environment_variable_wins_over_the_declared_default(monkeypatch):
    monkeypatch.delenv("AIRFLOW__AUTOPILOT__SMTP_CONN_ID", raising=False)
    assert config.smtp_conn_id() == OPTIONS["smtp_conn_id"]["default"]
    monkeypatch.setenv("AIRFLOW__AUTOPILOT__SMTP_CONN_ID", "smtp_corp")
    assert config.smtp_conn_id() == "smtp_corp"
    monkeypatch.setenv("AIRFLOW__AUTOPILOT__CHOICES_CACHE_SECONDS", "2.5")
    assert config.choices_cache_seconds() == 2.5
