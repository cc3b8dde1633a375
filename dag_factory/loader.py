"""Called by each generated stub: compile one definition file into (at most) one DAG — a workflow's or
a trigger's, by the builder ``dag_factory.registry.DAG_BUILDERS`` names for its kind.

Raises ``DefinitionError`` — which Airflow records as this file's import error — when the file or a
function it uses is invalid. On a worker (``get_parsing_context().dag_id`` set) a stub whose workflow
is not the one being run returns at once, so starting a task compiles only that task's workflow.
"""

from __future__ import annotations

from pathlib import Path

from autopilot_provider.definitions.errors import DefinitionError
from autopilot_provider.repository.folder import Project
from dag_factory.assets import AssetDefinitionError
from dag_factory.registry import DAG_BUILDERS
from dag_factory.stubs import INDEX_NAME, validated_dir


def load_dag_file(root: str, rel: str, stub_file: str | None = None):
    from airflow.sdk import get_parsing_context

    index = Path(stub_file).parent / INDEX_NAME if stub_file else None
    if index is not None:
        # stubs mirror the definitions' folders; the index sits at the top of the stubs folder
        for _ in Path(rel).parts[:-1]:
            index = index.parent.parent / INDEX_NAME
    has_index = index is not None and index.exists()
    project = Project(
        Path(root),
        index_path=index if has_index else None,
        trust_index=has_index,
        validated_dir=validated_dir(index.parent) if has_index and index is not None else None,
    )
    current = get_parsing_context().dag_id
    if current is not None:
        entry = project.index().get(rel)
        if entry is not None and entry.id != current:
            return None
    loaded = project.load(rel)
    if not loaded.ok:
        raise DefinitionError(loaded.diagnostics)
    build = DAG_BUILDERS.get(loaded.kind or "")
    if build is None:
        return None
    try:
        return build(loaded.definition, project, source=project.display(rel))
    except AssetDefinitionError as exc:  # a URI the provider of its scheme refuses
        assert loaded.located is not None
        raise DefinitionError([loaded.located.diagnostic(exc.loc, exc.message)]) from None


def report_misnamed(root: str, stub_file: str) -> None:
    """Called by the stub ``sync_stubs`` writes while definition files with names that are not
    allowed exist: raises one ``DefinitionError`` naming each (percent-encoded), which Airflow records
    as that stub's import error. Such files are never loaded; every other definition loads as usual."""
    from airflow.sdk import get_parsing_context

    if get_parsing_context().dag_id is not None:  # a worker running a task: not its business
        return
    index = Path(stub_file).parent / INDEX_NAME
    has_index = index.exists()
    project = Project(Path(root), index_path=index if has_index else None, trust_index=has_index)
    diagnostics = project.misnamed_diagnostics()
    if diagnostics:
        raise DefinitionError(diagnostics)
