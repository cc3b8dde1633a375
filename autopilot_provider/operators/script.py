"""Run a bash or python script step.

Values stay data: a script body is never templated. Form values, step outputs and inputs reach a bash
script only through the environment variables its step declares (``env:``), and a python script
also as data on stdin. The step's outputs come from a dedicated file, ``$AUTOPILOT_OUTPUT``, as
GitHub Actions' ``$GITHUB_OUTPUT`` does: stdout is only logged, so a value a script echoes cannot
forge an output. The script sees an allow-listed environment, never the worker's Airflow settings,
connections or variables; the connections a step declares are read here and handed over by name,
their secrets registered with Airflow's secrets masker.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
from airflow.sdk.log import mask_secret

from autopilot_provider import config
from autopilot_provider.definitions.code import env_name_problem
from autopilot_provider.definitions.templating import render_env_value
from autopilot_provider.repository.scope import ScopeSpec, build_scope

#: What every script gets from the worker's environment (names or globs), when the worker has them.
BASE_ENV_ALLOWLIST = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR")
#: Never passed on, whatever the allow-list says: Airflow's configuration (AIRFLOW__*), connections
#: (AIRFLOW_CONN_*), variables (AIRFLOW_VAR_*) and the task runner's own (_AIRFLOW_*).
DENIED_ENV = re.compile(r"^_*AIRFLOW", re.IGNORECASE)
#: The outputs file may hold this many bytes; more fails the step.
OUTPUT_LIMIT = 1024 * 1024
OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Runs each script in its own process group, killed when the task process dies (operators/_reaper.py).
REAPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_reaper.py")

_PYTHON_PRELUDE = """\
import json as _json, os as _os, sys as _sys
_ctx = _json.loads(_sys.stdin.read())
form, steps, inputs, run = _ctx["form"], _ctx["steps"], _ctx["inputs"], _ctx["run"]
def _output_to(path):
    def output(**values):
        with open(path, "a", encoding="utf-8") as file:
            file.write(_json.dumps(values, default=str) + "\\n")
    return output
output = _output_to(_os.environ["AUTOPILOT_OUTPUT"])
_path = _sys.argv[1]
del _ctx
exec(compile(open(_path, encoding="utf-8").read(), _path, "exec"))
"""


#: Sourced by every bash step (BASH_ENV): ``output NAME VALUE`` writes one output whatever the value
#: holds, as a ``NAME<<DELIMITER`` block whose delimiter is random, so a value cannot add outputs.
_BASH_HELPERS = """\
output() {
  if [ "$#" -ne 2 ]; then echo "usage: output NAME VALUE" >&2; return 2; fi
  local delimiter
  delimiter="AUTOPILOT_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \\n')"
  printf '%s<<%s\\n%s\\n%s\\n' "$1" "$delimiter" "$2" "$delimiter" >> "$AUTOPILOT_OUTPUT"
}
"""


class ScriptOutputError(RuntimeError):
    """The outputs file is too large, unreadable or not in the outputs format."""


def allowed_environment(environ: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """The part of ``environ`` a script may see: the base allow-list plus ``extra``, never Airflow's."""
    patterns = [*BASE_ENV_ALLOWLIST, *extra]
    return {
        name: value
        for name, value in environ.items()
        if not DENIED_ENV.match(name) and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    }


def connection_environment(prefix: str, conn_id: str) -> dict[str, str]:
    """PREFIX_HOST, _PORT, _LOGIN, _PASSWORD, _SCHEMA, _EXTRA (JSON) and _URI of one Airflow connection,
    read through the Task SDK. The password, the URI and secret-looking extras are masked in logs."""
    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    uri = conn.get_uri()
    if conn.password:
        mask_secret(conn.password)
        mask_secret(quote(conn.password, safe=""))  # as it appears inside the URI
    mask_secret(extra)  # a mapping: the values of keys named like secrets (token, api_key, ...)
    if conn.password or _secret_extras(extra):
        mask_secret(uri)
    return {
        f"{prefix}_HOST": conn.host or "",
        f"{prefix}_PORT": "" if conn.port is None else str(conn.port),
        f"{prefix}_LOGIN": conn.login or "",
        f"{prefix}_PASSWORD": conn.password or "",
        f"{prefix}_SCHEMA": conn.schema or "",
        f"{prefix}_EXTRA": json.dumps(extra, sort_keys=True),
        f"{prefix}_URI": uri,
    }


def _secret_extras(extra: dict[str, Any]) -> bool:
    """Whether an extra's key looks like a secret's (token, api_key, ...), as the masker judges it."""
    return any(value and should_hide_value_for_key(key) for key, value in extra.items())


def parse_outputs(text: str) -> dict[str, Any]:
    """The outputs a script wrote: ``name=value`` lines, ``name<<DELIMITER`` … ``DELIMITER`` blocks
    for multi-line values, and lines holding one JSON object (typed values). Later values win."""
    outputs: dict[str, Any] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i].removesuffix("\r")
        i += 1
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise ScriptOutputError(f"$AUTOPILOT_OUTPUT line {number}: invalid JSON: {exc}") from None
            if not isinstance(value, dict):
                raise ScriptOutputError(f"$AUTOPILOT_OUTPUT line {number}: a JSON line must hold an object")
            outputs.update(value)
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals > 0 and (heredoc < 0 or equals < heredoc):
            name, value = line[:equals], line[equals + 1 :]
        elif heredoc > 0:
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not delimiter:
                raise ScriptOutputError(f"$AUTOPILOT_OUTPUT line {number}: '{name}<<' needs a delimiter")
            block: list[str] = []
            while i < len(lines) and lines[i].removesuffix("\r") != delimiter:
                block.append(lines[i].removesuffix("\r"))
                i += 1
            if i >= len(lines):
                raise ScriptOutputError(
                    f"$AUTOPILOT_OUTPUT line {number}: the value of '{name}' is not closed by a line {delimiter!r}"
                )
            i += 1
            value = "\n".join(block)
        else:
            raise ScriptOutputError(
                f"$AUTOPILOT_OUTPUT line {number}: expected name=value, name<<DELIMITER or a JSON object"
            )
        if not OUTPUT_NAME.match(name):
            raise ScriptOutputError(
                f"$AUTOPILOT_OUTPUT line {number}: invalid output name {name!r} (letters, digits and _)"
            )
        outputs[name] = value
    return outputs


def read_outputs(path: str, limit: int = OUTPUT_LIMIT) -> dict[str, Any]:
    """Parse the outputs file, refusing anything but a regular file of at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ScriptOutputError("$AUTOPILOT_OUTPUT was replaced by a symbolic link") from None
        raise ScriptOutputError(f"cannot read $AUTOPILOT_OUTPUT: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ScriptOutputError("$AUTOPILOT_OUTPUT is not a regular file any more")
        if info.st_size > limit:
            raise ScriptOutputError(
                f"the script wrote {info.st_size} bytes to $AUTOPILOT_OUTPUT; outputs are limited to {limit} "
                "bytes (write large data to a file or a system of record and output its location)"
            )
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ScriptOutputError(f"outputs are limited to {limit} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScriptOutputError(f"$AUTOPILOT_OUTPUT is not UTF-8 text (byte {exc.start})") from None
    return parse_outputs(text)


class ScriptOperator(BaseOperator):
    """Run ``script`` in ``language`` (bash or python).

    The script is never templated. ``env`` values are rendered in Autopilot's sandbox as data and
    given as environment variables; ``connections`` (prefix → connection id) add PREFIX_HOST,
    PREFIX_PASSWORD, ... Python source receives ``form``, ``steps``, ``inputs`` and ``run`` as
    variables and may call ``output(name=value)``. Outputs are what the script writes to
    ``$AUTOPILOT_OUTPUT``.
    """

    template_fields: Sequence[str] = ("env",)
    template_fields_renderers = {"env": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        language: str,
        script: str,
        env: dict[str, str] | None = None,
        connections: dict[str, str] | None = None,
        cwd: str | None = None,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if language not in ("bash", "python"):
            raise ValueError(f"unsupported script language {language!r}")
        self.language = language
        self.script = script
        self.env = env or {}
        self.connections = connections or {}
        self.cwd = cwd
        self.scope = scope or {}
        self._process: subprocess.Popen | None = None
        names = [*self.env, *(f"{prefix}_X" for prefix in self.connections)]
        for name in names:
            # checked when definitions are validated, and here for DAGs written by hand
            problem = env_name_problem(name)
            if problem is not None:
                raise ValueError(
                    f"task {self.task_id!r}: {name!r} cannot be a script's environment variable: {problem}"
                )

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # User text renders in Autopilot's sandbox with Autopilot's names, not Airflow's context.
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        self.env = {name: render_env_value(str(value), scope) for name, value in self.env.items()}

    def execute(self, context: Any) -> dict[str, Any]:
        env = allowed_environment(os.environ, config.script_env_allowlist())
        for prefix, conn_id in self.connections.items():
            env.update(connection_environment(prefix, conn_id))
        for name, value in self.env.items():
            if "\x00" in value:
                raise ValueError(f"environment variable {name} holds a NUL character, which no program can read")
            env[name] = value
        stdin_data = None
        # the outputs file and helpers live apart from the working folder, where the script writes
        with (
            tempfile.TemporaryDirectory(prefix="autopilot-") as tmp,
            tempfile.TemporaryDirectory(prefix="autopilot-step-") as private,
        ):
            output_path = os.path.join(private, "outputs")
            open(output_path, "x").close()
            env["AUTOPILOT_RUN_ID"] = str(context.get("run_id") or "")
            env["AUTOPILOT_OUTPUT"] = output_path
            if self.language == "bash":
                helpers = os.path.join(private, "helpers.sh")
                with open(helpers, "w", encoding="utf-8") as handle:
                    handle.write(_BASH_HELPERS)
                env["BASH_ENV"] = helpers
                command = ["bash", "-e", "-o", "pipefail", "-c", self.script]
            else:
                path = os.path.join(tmp, f"{self.task_id}.py")
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(self.script)
                command = [sys.executable, "-c", _PYTHON_PRELUDE, path]
                scope = build_scope(context, ScopeSpec.from_dict(self.scope), eager=True)
                stdin_data = json.dumps({k: scope[k] for k in ("form", "steps", "inputs", "run")}, default=str)
            self._run(command, env, stdin_data, cwd=self.cwd or tmp)
            return read_outputs(output_path)

    def _run(self, command: list[str], env: dict[str, str], stdin_data: str | None, cwd: str) -> None:
        self.log.info("Running %s script", self.language)
        try:
            # through the reaper: the script's process group dies with this task process
            self._process = subprocess.Popen(
                [sys.executable, "-I", REAPER, str(os.getpid()), "--", *command],
                stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                text=True,
                errors="replace",
                bufsize=1,
            )
        except OSError as exc:
            if exc.errno == errno.E2BIG:
                raise RuntimeError("the script's environment is too large (an env value is too long)") from None
            raise
        if stdin_data is not None:
            assert self._process.stdin is not None
            try:
                self._process.stdin.write(stdin_data)
                self._process.stdin.close()
            except BrokenPipeError:
                pass  # the script exited without reading its input; its exit code tells
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.log.info("%s", line.rstrip("\n"))
        code = self._process.wait()
        self._process = None
        if code != 0:
            raise RuntimeError(f"{self.language} script exited with code {code}")

    def on_kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(os.getpgid(self._process.pid), signal.SIGTERM)
