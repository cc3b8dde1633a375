"""Run a bash or python script step; the last stdout line that is a JSON object becomes the step's
outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from autopilot_provider.runtime import ScopeSpec, build_scope
from autopilot_provider.templating import render

_PYTHON_PRELUDE = """\
import json as _json, sys as _sys
_ctx = _json.loads(_sys.stdin.read())
form, steps, inputs, run = _ctx["form"], _ctx["steps"], _ctx["inputs"], _ctx["run"]
def output(**values):
    print(_json.dumps(values, default=str), flush=True)
_path = _sys.argv[1]
del _ctx
exec(compile(open(_path, encoding="utf-8").read(), _path, "exec"))
"""


class ScriptOperator(BaseOperator):
    """Run ``script`` in ``language`` (bash or python).

    Bash scripts are rendered with the sandboxed Jinja environment, every value shell-quoted.
    Python source is never templated: it receives ``form``, ``steps``, ``inputs`` and ``run`` as
    variables and may call ``output(name=value)``.
    """

    template_fields: Sequence[str] = ("script", "env")
    template_fields_renderers = {"script": "bash", "env": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        language: str,
        script: str,
        env: dict[str, str] | None = None,
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
        self.cwd = cwd
        self.scope = scope or {}
        self._process: subprocess.Popen | None = None

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # User text renders in Autopilot's sandbox with Autopilot's names, not Airflow's context.
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        if self.language == "bash":
            self.script = render(self.script, scope, shell=True)
        self.env = {name: render(str(value), scope) for name, value in self.env.items()}

    def execute(self, context: Any) -> dict[str, Any]:
        env = {**os.environ, **self.env, "AUTOPILOT_RUN_ID": str(context.get("run_id") or "")}
        stdin_data = None
        with tempfile.TemporaryDirectory(prefix="autopilot-") as tmp:
            if self.language == "bash":
                command = ["bash", "-e", "-o", "pipefail", "-c", self.script]
            else:
                path = os.path.join(tmp, f"{self.task_id}.py")
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(self.script)
                command = [sys.executable, "-c", _PYTHON_PRELUDE, path]
                scope = build_scope(context, ScopeSpec.from_dict(self.scope), eager=True)
                stdin_data = json.dumps({k: scope[k] for k in ("form", "steps", "inputs", "run")}, default=str)
            return self._run(command, env, stdin_data, cwd=self.cwd or tmp)

    def _run(self, command: list[str], env: dict[str, str], stdin_data: str | None, cwd: str) -> dict[str, Any]:
        self.log.info("Running %s script", self.language)
        outputs: dict[str, Any] | None = None
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        if stdin_data is not None:
            assert self._process.stdin is not None
            self._process.stdin.write(stdin_data)
            self._process.stdin.close()
        assert self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            self.log.info("%s", line)
            stripped = line.strip()
            if stripped[:1] == "{":
                try:
                    outputs = json.loads(stripped)
                except ValueError:
                    pass
        code = self._process.wait()
        self._process = None
        if code != 0:
            raise RuntimeError(f"{self.language} script exited with code {code}")
        if outputs is None:
            return {}
        return outputs

    def on_kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(os.getpgid(self._process.pid), signal.SIGTERM)
