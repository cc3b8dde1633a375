"""Which parts of a definition are code that a worker runs.

A definition is data except where its text becomes a program: a script step's body (bash, python,
ssh, ansible, terraform), where it runs (``cwd``) and the credentials it receives (``connections``).
Saving a definition that adds such a part, or changes one, is code authoring and needs its own
permission (docs/security.md); composing workflows from parts that are already there does not.

Parts are compared by content, not by position: moving a reviewed script, renaming its step or
changing its ``env`` values (data handed to the script, never part of its text) adds no code; a new
``env`` *name* does (``SHELLOPTS``, ``PS4`` or ``LD_PRELOAD`` would change what runs).
The raw YAML is read, not the models, so that even a definition that does not validate is judged
(it is refused later anyway) and a new field of a script counts as code until it is declared data.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from autopilot_provider.definitions.source import YamlError, parse

#: step key → the fields of its body whose *values* are data handed to the code; their names are
#: still code (an environment variable's name decides what a shell or an interpreter does with it).
CODE_KEYS: dict[str, frozenset[str]] = {"script": frozenset({"env"})}

#: Environment variables no script step may set (its `env:` or a connection prefix's variables):
#: Airflow's configuration and secrets, Autopilot's own variables, and names that make a shell, the
#: dynamic loader or an interpreter run code or look for programs elsewhere (``PS4`` with
#: ``SHELLOPTS=xtrace`` runs a command substitution; ``BASH_ENV``, ``LD_PRELOAD``, ``PYTHONSTARTUP``
#: load a file; ``PATH`` chooses the programs). A value templated from a form can then never become code.
RESERVED_ENV = re.compile(
    r"^(?:_*AIRFLOW|AUTOPILOT_|BASH|SHELLOPTS$|PS\d$|PROMPT_COMMAND$|ENV$|IFS$|CDPATH$|GLOBIGNORE$|"
    r"LD_|DYLD_|PYTHON|PERL|RUBY|NODE_OPTIONS$|JAVA_TOOL_OPTIONS$|_JAVA_OPTIONS$|GCONV_PATH$|"
    r"HOSTALIASES$|LOCALDOMAIN$|RES_OPTIONS$|PATH$|HOME$|SHELL$|TMPDIR$|GIT_|SSH_|EDITOR$|VISUAL$|PAGER$)",
    re.IGNORECASE,
)


def env_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a script's environment variable, or ``None``."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return "an environment variable's name is letters, digits and '_', not starting with a digit"
    if RESERVED_ENV.match(name):
        return (
            "it is reserved: Airflow's configuration (AIRFLOW*), Autopilot's own variables (AUTOPILOT_*) and "
            "names that change which code a shell, loader or interpreter runs (BASH*, SHELLOPTS, PS4, ENV, IFS, "
            "LD_*, PYTHON*, PATH, HOME, …) cannot be set by a step"
        )
    return None


def code_parts(data: Any) -> dict[str, str]:
    """Fingerprint → description (``step 'ping' (bash script)``) of every code part in ``data``."""
    found: dict[str, str] = {}
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, data_fields in CODE_KEYS.items():
                body = node.get(key)
                if isinstance(body, dict):
                    code = {
                        k: (sorted(map(str, v)) if isinstance(v, dict) else v) if k in data_fields else v
                        for k, v in body.items()
                    }
                    text = json.dumps([key, code], sort_keys=True, default=str)
                    found.setdefault(hashlib.sha256(text.encode()).hexdigest(), _describe(node, key, code))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _describe(step: dict[str, Any], key: str, code: dict[str, Any]) -> str:
    ident = step.get("id")
    kinds = [k for k in code if k not in ("cwd", "connections", "env")]
    what = f"{kinds[0]} {key}" if len(kinds) == 1 else key
    return f"step '{ident}' ({what})" if isinstance(ident, str) else what


def text_code_parts(text: str | None, path: str = "<content>") -> dict[str, str]:
    """:func:`code_parts` of YAML text; text that does not parse holds no code (it cannot be saved)."""
    if not text:
        return {}
    try:
        return code_parts(parse(text, path).data)
    except YamlError:
        return {}


def added_code(old_text: str | None, new_text: str | None, path: str = "<content>") -> list[str]:
    """Descriptions of the code parts in ``new_text`` that ``old_text`` does not have, in order."""
    old = text_code_parts(old_text, path)
    return [what for fingerprint, what in text_code_parts(new_text, path).items() if fingerprint not in old]
