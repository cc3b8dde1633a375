"""The ``autopilot`` command: validate definitions, render a workflow as Python, export the schema,
import an OpenAPI document, delete a definition (through the definition store, so a revision keeps
it), migrate the Autopilot tables and create Autopilot's FAB permissions and roles. Runs where Airflow is
installed (an admin's shell, the deployment's start-up); the top layer, beside the plugin."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autopilot_provider import config
from autopilot_provider.definitions.errors import Refused
from autopilot_provider.definitions.schema import schema_files
from autopilot_provider.openapi.sources import Allowlist
from autopilot_provider.repository.folder import (
    Project,
    encode_path,
    is_definition_path,
    misnamed_diagnostic,
    path_problem,
)
from autopilot_provider.server.definition_store import DefinitionStore
from autopilot_provider.server.errors import InvalidDocument
from autopilot_provider.server.fab_permissions import (
    RESOURCES,
    ROLES,
    RoleChange,
    fab_is_auth_manager,
    sync_fab_permissions,
    sync_fab_roles,
)
from autopilot_provider.server.openapi_import import import_openapi
from autopilot_provider.server.tables import migrate
from dag_factory.bundle import refresh_bundles
from dag_factory.render import RenderError, render_workflow

DEFAULT_ROOT = "definitions"


def _project(root: Path):

    display = os.path.relpath(root.resolve(), Path.cwd())
    return Project(root, display_root="" if display == "." else display)


def _root_for(paths: list[Path], explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    for path in paths:
        if path.is_dir():
            return path
    default = Path(DEFAULT_ROOT)
    if paths and all(default.resolve() in p.resolve().parents for p in paths):
        return default
    return paths[0].parent if paths else default


def cmd_validate(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [Path(DEFAULT_ROOT)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"autopilot validate: no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    root = _root_for(paths, args.definitions)
    project = _project(root)

    selected: list[str] = []
    # files whose names are not allowed are never loaded: each is one error, its name percent-encoded
    diagnostics = []
    for path in paths:
        if path.is_dir():
            prefix = os.path.relpath(path.resolve(), project.root).replace(os.sep, "/")
            selected += [rel for rel in project.index() if prefix == "." or rel.startswith(prefix + "/")]
            diagnostics += [
                d
                for rel, d in zip(project.misnamed(), project.misnamed_diagnostics(), strict=True)
                if prefix == "." or rel.startswith(prefix + "/")
            ]
        else:
            rel = os.path.relpath(path.resolve(), project.root).replace(os.sep, "/")
            if rel.startswith("..") or not is_definition_path(rel):
                project = _project(path.parent)
                rel = path.name
            if path_problem(rel) is None:
                selected.append(rel)
            else:
                diagnostics.append(misnamed_diagnostic(project.display(encode_path(rel)), rel))
    for rel in dict.fromkeys(selected):
        diagnostics += project.load(rel).diagnostics
    diagnostics += [d for d in project.duplicate_ids() if d.path in {project.display(r) for r in selected}]
    diagnostics.sort()
    if args.format == "json":
        print(json.dumps({"files": len(set(selected)), "errors": [d.as_dict() for d in diagnostics]}, indent=2))
    else:
        for diagnostic in diagnostics:
            print(diagnostic)
        sys.stdout.flush()
        if not args.quiet:
            bad = len({d.path for d in diagnostics})
            print(
                f"{len(set(selected))} definition(s) checked, {len(diagnostics)} error(s) in {bad} file(s)",
                file=sys.stderr,
            )
    return 1 if diagnostics else 0


def cmd_render(args: argparse.Namespace) -> int:

    project = _project(Path(args.definitions))
    try:
        text = render_workflow(project, args.workflow)
    except RenderError as exc:
        print(f"autopilot render: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:

    out = Path(args.output)
    stale = []
    for name, text in schema_files().items():
        target = out / name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            stale.append(str(target))
            if not args.check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("stale JSON Schema (run `autopilot schema`): " + ", ".join(stale), file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:

    applied = migrate()
    if applied:
        print("applied: " + ", ".join(applied))
    else:
        print("the Autopilot tables are up to date")

    if fab_is_auth_manager():
        return cmd_permissions_sync(args)
    return 0


def cmd_permissions_sync(args: argparse.Namespace) -> int:
    """Create Autopilot's FAB permissions and grant them to Admin."""
    return _fab_sync(
        sync_fab_permissions, lambda permission: f"FAB permission ready (and granted to Admin): {permission}"
    )


NOT_FAB = (
    "the auth manager is not FAB: nothing to create (with SimpleAuthManager the roles come from "
    "[autopilot] designer_roles, code_author_roles and alert_admin_roles, and Airflow's own roles)"
)


def cmd_roles_sync(args: argparse.Namespace) -> int:
    """Create or update Autopilot's FAB roles so that each holds exactly its permissions."""
    return _fab_sync(sync_fab_roles, RoleChange.describe)


def _fab_sync(sync: Callable[[], list[Any]], describe: Callable[[Any], str]) -> int:
    """Run ``sync`` when FAB is the auth manager and print a line per thing it did."""
    if not fab_is_auth_manager():
        print(NOT_FAB)
        return 0
    with _quiet_fab():
        done = sync()
    for item in done:
        print(describe(item))
    return 0


@contextmanager
def _quiet_fab():
    """FAB logs each permission and role it touches at INFO, and the libraries of its Flask app warn
    as it starts: the sync commands print what they did themselves."""
    fab_log = logging.getLogger("airflow.providers.fab")
    level = fab_log.level
    fab_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        fab_log.setLevel(level)


def cmd_import_openapi(args: argparse.Namespace) -> int:

    root = Path(args.definitions)
    document: dict = {"source": args.spec}
    if re.match(r"^https?://", args.spec, re.IGNORECASE):
        # the same rules as the API server's imports: internal addresses only when allow-listed
        try:
            allowlist = Allowlist.parse(config.fetch_allowlist())
        except ValueError as exc:
            print(f"autopilot import-openapi: [autopilot] {exc}", file=sys.stderr)
            return 1
        document = {"url": args.spec, "allowlist": allowlist}
    try:
        result = import_openapi(root, args.name, connection=args.connection, force=args.force, **document)
    except Refused as exc:
        where = f"{args.spec}: " if isinstance(exc, InvalidDocument) else ""
        print(f"autopilot import-openapi: {where}{exc}", file=sys.stderr)
        print("nothing was written", file=sys.stderr)
        return 1
    shown = os.path.relpath(root.resolve(), Path.cwd())
    derived = f", {result.derived_ids} without operationId (derived ids)" if result.derived_ids else ""
    print(
        f"{'replaced' if result.replaced else 'imported'} Api '{result.name}': {result.title or '(no title)'} "
        f"{result.version} (OpenAPI {result.openapi}), {result.operations} operation(s){derived}"
    )
    print(f"  {os.path.join(shown, result.spec_path)}")
    print(f"  {os.path.join(shown, result.api_path)} (connection: {result.connection})")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a definition through the store (a revision keeps its content), also one whose file name
    is not allowed (``--encoded``, the name percent-encoded as listings and diagnostics show it)."""
    import getpass

    store = DefinitionStore(args.definitions, refresh=refresh_bundles)
    author = f"cli:{getpass.getuser()}"
    try:
        # the operator at the shell sees the files: without --version, whatever is there now goes
        version = args.version or store.file_version(args.path, encoded=args.encoded) or ""
        if args.encoded:
            result = store.delete_misnamed(args.path, version, author=author)
        else:
            result = store.delete(args.path, version, author=author)
    except Refused as exc:
        print(f"autopilot delete: {exc.message}", file=sys.stderr)
        return 1
    print(f"deleted {result.path} (revision {result.revision})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autopilot", description="Autopilot workflow definitions for Airflow.")
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check definitions; print path:line:col: message per problem")
    validate.add_argument("paths", nargs="*", help="files or folders (default: definitions/)")
    validate.add_argument("--definitions", help="the definitions root (for functions); default: guessed")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    validate.set_defaults(func=cmd_validate)

    render = sub.add_parser("render", help="print an equivalent, readable Python DAG file (the eject path)")
    render.add_argument("workflow", help="workflow id or definition file")
    render.add_argument("--definitions", default=DEFAULT_ROOT)
    render.add_argument("-o", "--output", help="write to this file instead of stdout")
    render.set_defaults(func=cmd_render)

    schema = sub.add_parser("schema", help="export the definition JSON Schema")
    schema.add_argument("-o", "--output", default=os.path.join(DEFAULT_ROOT, "schema"))
    schema.add_argument("--check", action="store_true", help="exit 1 if the exported schema is stale")
    schema.set_defaults(func=cmd_schema)

    imp = sub.add_parser(
        "import-openapi",
        help="validate an OpenAPI document (file or URL) and add it as an Api definition under apis/",
    )
    imp.add_argument(
        "spec",
        help="the document: a local file or an http(s) URL (internal addresses need [autopilot] fetch_allowlist); "
        "JSON or YAML; Swagger 2.0, OpenAPI 3.0/3.1",
    )
    imp.add_argument("--name", required=True, help="the Api id (letters, digits, underscores)")
    imp.add_argument("--connection", help="Airflow connection id with base URL and credentials (default: NAME_api)")
    imp.add_argument("--definitions", default=DEFAULT_ROOT, help="the definitions folder (default: definitions)")
    imp.add_argument("--force", action="store_true", help="replace an existing Api of that name")
    imp.set_defaults(func=cmd_import_openapi)

    delete = sub.add_parser(
        "delete", help="delete a definition file, recording a revision (as the API does); also a misnamed one"
    )
    delete.add_argument("path", help="relative to the definitions folder; with --encoded: the name percent-encoded")
    delete.add_argument(
        "--encoded",
        action="store_true",
        help="PATH is a file whose name is not allowed, percent-encoded as `autopilot validate` shows it",
    )
    delete.add_argument("--version", help="refuse unless the file still has this version (sha256); default: any")
    delete.add_argument("--definitions", help="the definitions folder (default: the one Airflow is configured with)")
    delete.set_defaults(func=cmd_delete)

    db = sub.add_parser("db", help="the Autopilot tables in the Airflow metadata database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_migrate = db_sub.add_parser("migrate", help="create or upgrade the autopilot_* tables (idempotent)")
    db_migrate.set_defaults(func=cmd_db_migrate)

    permissions = sub.add_parser("permissions", help="Autopilot's permissions in the auth manager")
    permissions_sub = permissions.add_subparsers(dest="permissions_command", required=True)
    permissions_sync = permissions_sub.add_parser(
        "sync",
        help=f"FAB auth manager: create 'can_edit' on {', '.join(repr(r) for r in RESOURCES)} and grant them to "
        "Admin (idempotent; db migrate does it too)",
    )
    permissions_sync.set_defaults(func=cmd_permissions_sync)

    roles = sub.add_parser("roles", help="Autopilot's roles in the FAB auth manager")
    roles_sub = roles.add_subparsers(dest="roles_command", required=True)
    roles_sync = roles_sub.add_parser(
        "sync",
        help=f"FAB auth manager: create or update the roles {', '.join(repr(r) for r in ROLES)} with exactly "
        "their permissions (per-DAG grants kept), after `permissions sync` (idempotent)",
    )
    roles_sync.set_defaults(func=cmd_roles_sync)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
