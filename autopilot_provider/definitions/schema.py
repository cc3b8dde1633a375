"""The JSON Schema of the definition format, derived from the models (never hand-written)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from autopilot_provider.definitions import models as m

SCHEMA_BASE = "https://autopilot.dev/schema/v1/"


def definition_schema() -> dict[str, Any]:
    """One schema for any definition file, dispatching on `kind`."""
    adapter = TypeAdapter(m.Definition)
    schema = adapter.json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_BASE + "definition.json"
    schema["title"] = "Autopilot definition (apiVersion autopilot/v1)"
    return schema


def step_schemas() -> dict[str, Any]:
    """Per step kind, the schema of its body — used by the designer's property panels."""
    return {kind: TypeAdapter(model).json_schema(by_alias=True) for kind, model in m.STEP_KINDS.items()}


def schema_files() -> dict[str, str]:
    def dump(value: Any) -> str:
        return json.dumps(value, indent=2, sort_keys=True) + "\n"

    files = {"definition.schema.json": dump(definition_schema())}
    for kind, model in m.KINDS.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = SCHEMA_BASE + f"{kind.lower()}.json"
        files[f"{kind.lower()}.schema.json"] = dump(schema)
    files["steps.schema.json"] = dump(step_schemas())
    return files
