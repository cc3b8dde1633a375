"""An OpenAPI operation + rendered ``params`` and ``body`` → one HTTP request, checked before it is sent.

Pure functions (no Airflow, no network), shared by the task operator (sync hook) and the wait trigger
(async, in the triggerer):

* :func:`build_request` checks every parameter and the body against the operation's schemas — all
  problems at once, each naming its field (``body.policy: 'platinum' is not one of [...]``) — and
  encodes them: path, query, header and cookie parameters with their OpenAPI ``style``/``explode``
  (Swagger 2.0 ``collectionFormat``), JSON, form-urlencoded, multipart and text bodies.
* :func:`check_response` checks a response body against the declared response schema.
* :func:`evaluate_outputs` turns the step's ``outputs`` expressions over ``response`` into values.
* :class:`RetryPolicy` says whether and how long to wait before re-sending.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from autopilot_provider.definitions.errors import suggest
from autopilot_provider.definitions.templating import evaluate
from autopilot_provider.openapi.spec import Operation, Spec, schema_validator

#: Header parameters that OpenAPI says are ignored (the request's own machinery sets them).
IGNORED_HEADERS = {"accept", "content-type", "authorization"}
#: How much of a response body goes into an error message or the log.
EXCERPT = 2000


class RequestValidationError(ValueError):
    """The rendered params or body do not match the operation: nothing was sent."""

    def __init__(self, operation: str, problems: list[str]):
        self.operation = operation
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"request for operation '{operation}' is invalid, nothing was sent:\n{lines}")


@dataclass
class PreparedRequest:
    """A request relative to the API's base URL, in JSON-able form (it travels to the triggerer)."""

    method: str
    path: str  # expanded and percent-encoded, e.g. /hosts/db%2001/agent
    query: list[list[str]] = field(default_factory=list)  # [name, value] pairs, not yet encoded
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    content: str | None = None
    content_type: str | None = None
    operation: str = ""
    raw_query: str = ""  # pre-encoded query (styles whose delimiters must stay literal)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreparedRequest:
        return cls(**{k: (list(v) if k == "query" else v) for k, v in data.items()})

    def url(self, base_url: str, extra_query: Iterable[Iterable[str]] = ()) -> str:
        """The full URL: base URL + path + query (``extra_query`` adds e.g. an API key)."""
        parts = [p for p in (self.raw_query, urlencode([tuple(q) for q in [*self.query, *extra_query]])) if p]
        url = base_url.rstrip("/") + self.path
        return f"{url}?{'&'.join(parts)}" if parts else url


# ---------------------------------------------------------------------------------------------
# Building and checking a request
# ---------------------------------------------------------------------------------------------


def build_request(spec: Spec, operation: Operation, params: Mapping[str, Any] | None, body: Any) -> PreparedRequest:
    """Check ``params`` and ``body`` against ``operation`` and encode them; raise
    :class:`RequestValidationError` listing every problem (nothing is sent then)."""
    params = dict(params or {})
    problems = check_params(spec, operation, params)
    problems += check_body(spec, operation, body)
    if problems:
        raise RequestValidationError(operation.id, problems)
    values = {name: coerce(value, _param(operation, name).schema) for name, value in params.items()}
    swagger = spec.dialect == "2.0"
    path = operation.path
    query: list[list[str]] = []
    raw_query: list[str] = []
    headers: dict[str, str] = {"Accept": _accept(operation)}
    cookies: dict[str, str] = {}
    seen: set[str] = set()
    for param in _by_priority(operation):
        if param.name in seen or values.get(param.name) is None:
            continue
        seen.add(param.name)
        value = values[param.name]
        style, explode = _style(param, swagger)
        if param.location == "path":
            path = path.replace("{" + param.name + "}", encode_path(param.name, value, style, explode))
        elif param.location == "query":
            pairs, raw = encode_query(param.name, value, style, explode)
            query += pairs
            if raw:
                raw_query.append(raw)
        elif param.location == "header":
            if param.name.lower() not in IGNORED_HEADERS:
                headers[param.name] = _simple(value, explode, escape=False)
        elif param.location == "cookie":
            cookies[param.name] = _simple(value, explode, escape=False)
    content, content_type = encode_body(operation, body)
    if content_type:
        headers["Content-Type"] = content_type
    return PreparedRequest(
        method=operation.method,
        path=path,
        query=query,
        headers=headers,
        cookies=cookies,
        content=content,
        content_type=content_type,
        operation=operation.id,
        raw_query="&".join(raw_query),
    )


def _param(operation: Operation, name: str):
    return next(p for p in _by_priority(operation) if p.name == name)


def _by_priority(operation: Operation):
    order = {"path": 0, "query": 1, "header": 2, "cookie": 3}
    return sorted(operation.parameters, key=lambda p: order.get(p.location, 9))


def parameter_names(operation: Operation) -> list[str]:
    return sorted({p.name for p in operation.parameters})


def check_params(spec: Spec, operation: Operation, params: Mapping[str, Any], *, skip=None) -> list[str]:
    """Problems with ``params``: unknown or missing names, values that break the parameter's schema.

    ``skip(value)`` → True leaves a value unchecked (validation time skips templated values)."""

    problems: list[str] = []
    names = parameter_names(operation)
    for name in params:
        if name not in names:
            problems.append(
                f"params.{name}: operation '{operation.id}' has no parameter '{name}'{suggest(name, names)}"
                + ("" if suggest(name, names) or not names else f"; its parameters: {', '.join(names)}")
            )
    seen: set[str] = set()
    for param in _by_priority(operation):
        if param.name in seen:  # the same name in two locations: the first (path, query, ...) wins
            continue
        seen.add(param.name)
        value = params.get(param.name)
        if value is None:
            if param.required:
                problems.append(f"params.{param.name}: missing required {param.location} parameter")
            continue
        if skip is not None and skip(value):
            continue
        value = coerce(value, param.schema)
        problems += _schema_problems(spec, param.schema, value, f"params.{param.name}", skip)
    return problems


def check_body(spec: Spec, operation: Operation, body: Any, *, skip=None) -> list[str]:
    if body is None:
        return ["body: the operation requires a request body"] if operation.body_required else []
    if operation.body_schema is None and not operation.body_media_types:
        return [f"body: operation '{operation.id}' takes no request body"]
    if skip is not None and skip(body):
        return []
    return _schema_problems(spec, operation.body_schema or {}, body, "body", skip)


def _schema_problems(spec: Spec, schema: dict[str, Any], value: Any, where: str, skip=None) -> list[str]:
    return [f"{dotted(where, path)}: {message}" for path, message in schema_errors(spec, schema, value, skip=skip)]


def schema_errors(spec: Spec, schema: dict[str, Any], value: Any, *, skip=None) -> list[tuple[tuple, str]]:
    """(path inside ``value``, message) for each way ``value`` breaks ``schema``; errors about a part
    for which ``skip(part)`` is true (e.g. a template not rendered yet) are left out."""
    if not schema:
        return []
    validator = schema_validator(spec, schema)
    errors = []
    for error in sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]):
        if skip is not None and _contains(error.instance, skip):
            continue
        errors.append((tuple(error.absolute_path), error.message))
    return errors


def _contains(value: Any, predicate) -> bool:
    if predicate(value):
        return True
    if isinstance(value, dict):
        return any(_contains(v, predicate) for v in value.values())
    if isinstance(value, list):
        return any(_contains(v, predicate) for v in value)
    return False


def dotted(where: str, path: Iterable[Any]) -> str:
    out = where
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def coerce(value: Any, schema: Mapping[str, Any]) -> Any:
    """A parameter given as text (``"5"`` from a template) becomes the schema's scalar type."""
    if not isinstance(value, str):
        return value
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    try:
        if "integer" in kinds and value.strip().lstrip("-").isdigit():
            return int(value)
        if "number" in kinds:
            return float(value) if any(c in value for c in ".eE") else int(value)
    except ValueError:
        return value
    if "boolean" in kinds and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


# ---------------------------------------------------------------------------------------------
# Parameter encoding (OpenAPI 3 styles, RFC 6570; Swagger 2.0 collectionFormat)
# ---------------------------------------------------------------------------------------------

_SWAGGER_FORMATS = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "tsv": ("tabDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
}


def _style(param, swagger: bool) -> tuple[str, bool]:
    if swagger:
        fmt = param.schema.get("collectionFormat", "csv")
        style, explode = _SWAGGER_FORMATS.get(fmt, ("form", False))
        if param.location in ("path", "header"):
            style = "simple"
        return style, explode
    default = "form" if param.location in ("query", "cookie") else "simple"
    style = param.style or default
    explode = param.explode if param.explode is not None else style == "form"
    return style, explode


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _q(value: Any) -> str:
    return quote(scalar(value), safe="")


def _simple(value: Any, explode: bool, *, escape: bool = True) -> str:
    enc = _q if escape else scalar
    if isinstance(value, list):
        return ",".join(enc(v) for v in value)
    if isinstance(value, dict):
        if explode:
            return ",".join(f"{enc(k)}={enc(v)}" for k, v in value.items())
        return ",".join(f"{enc(k)},{enc(v)}" for k, v in value.items())
    return enc(value)


def encode_path(name: str, value: Any, style: str, explode: bool) -> str:
    if style == "label":
        if isinstance(value, list):
            return "." + ("." if explode else ",").join(_q(v) for v in value)
        if isinstance(value, dict):
            sep = "." if explode else ","
            return "." + sep.join(f"{_q(k)}={_q(v)}" if explode else f"{_q(k)},{_q(v)}" for k, v in value.items())
        return "." + _q(value)
    if style == "matrix":
        if isinstance(value, list):
            if explode:
                return "".join(f";{name}={_q(v)}" for v in value)
            return f";{name}=" + ",".join(_q(v) for v in value)
        if isinstance(value, dict):
            if explode:
                return "".join(f";{_q(k)}={_q(v)}" for k, v in value.items())
            return f";{name}=" + ",".join(f"{_q(k)},{_q(v)}" for k, v in value.items())
        return f";{name}={_q(value)}"
    return _simple(value, explode)


_DELIMITERS = {"spaceDelimited": "%20", "pipeDelimited": "|", "tabDelimited": "%09"}


def encode_query(name: str, value: Any, style: str, explode: bool) -> tuple[list[list[str]], str]:
    """([name, value] pairs to urlencode, pre-encoded text for styles with literal delimiters)."""
    if style == "deepObject" and isinstance(value, dict):
        return [[f"{name}[{k}]", scalar(v)] for k, v in value.items()], ""
    if isinstance(value, list):
        if explode:
            return [[name, scalar(v)] for v in value], ""
        delimiter = _DELIMITERS.get(style, ",")
        return [], f"{quote(name, safe='')}=" + delimiter.join(_q(v) for v in value)
    if isinstance(value, dict):
        if explode:
            return [[str(k), scalar(v)] for k, v in value.items()], ""
        return [], f"{quote(name, safe='')}=" + ",".join(f"{_q(k)},{_q(v)}" for k, v in value.items())
    return [[name, scalar(value)]], ""


# ---------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------


def _accept(operation: Operation) -> str:
    return "application/json, */*;q=0.5"


def body_media_type(operation: Operation) -> str:
    types = operation.body_media_types or ("application/json",)
    for kind in types:
        if kind == "application/json" or kind.endswith("+json"):
            return kind
    for kind in types:
        if "json" in kind:
            return kind
    return types[0]


def encode_body(operation: Operation, body: Any) -> tuple[str | None, str | None]:
    """(content, content type) for ``body`` in the operation's preferred media type."""
    if body is None:
        return None, None
    media = body_media_type(operation)
    if "json" in media or media == "*/*":
        return json.dumps(body, default=str), "application/json" if media == "*/*" else media
    if media == "application/x-www-form-urlencoded":
        return urlencode(_form_pairs(body)), media
    if media == "multipart/form-data":
        boundary = f"autopilot-{uuid.uuid4().hex}"
        chunks = []
        for key, value in _form_pairs(body):
            chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n')
        chunks.append(f"--{boundary}--\r\n")
        return "".join(chunks), f"multipart/form-data; boundary={boundary}"
    return (body if isinstance(body, str) else json.dumps(body, default=str)), media


def _form_pairs(body: Any) -> list[tuple[str, str]]:
    if not isinstance(body, dict):
        raise RequestValidationError("", [f"body: a form body must be an object, got {type(body).__name__}"])
    pairs = []
    for key, value in body.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((str(key), scalar(item)))
    return pairs


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


def parse_body(content: bytes | str, content_type: str | None) -> Any:
    """JSON bodies → values; anything else → text; empty → None."""
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    if not text:
        return None
    if content_type and "json" in content_type.lower():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def response_schema(operation: Operation, status: int) -> tuple[str | None, dict[str, Any] | None]:
    """(the responses key that applies, its schema): the exact code, then ``2XX``, then ``default``."""
    for key in (str(status), f"{str(status)[0]}XX", f"{str(status)[0]}xx", "default"):
        if key in operation.responses:
            return key, operation.responses[key]
    return None, None


def check_response(spec: Spec, operation: Operation, status: int, body: Any) -> list[str]:
    """Problems of the body against the schema declared for its status (the exact code, ``2XX`` or
    ``default``); a status the document does not list is not checked (documents are often loose
    about codes)."""
    key, schema = response_schema(operation, status)
    if key is None or not schema or body is None:
        return []
    return _schema_problems(spec, schema, body, "response.body")


def excerpt(body: Any, limit: int = EXCERPT) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def evaluate_outputs(outputs: Mapping[str, str], response: Mapping[str, Any], scope: Mapping[str, Any]) -> dict:
    """The step's outputs: each expression over ``response`` (and the usual names). Without outputs:
    ``{status, body}``. An expression naming a field the response lacks fails with its name."""
    from jinja2 import Undefined
    from jinja2.exceptions import UndefinedError

    if not outputs:
        return {"status": response["status"], "body": response["body"]}
    full = {**scope, "response": response}
    result = {}
    for name, expression in outputs.items():
        expression = _strip_braces(expression)
        try:
            value = evaluate(expression, full)
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
        except UndefinedError as exc:
            raise ValueError(f"output '{name}': `{expression}` is undefined: {exc.message}") from None
        result[name] = json.loads(json.dumps(value, default=str))
    return result


def _strip_braces(expression: str) -> str:
    text = expression.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        return text[2:-2].strip()
    return text


def condition(expression: str, response: Mapping[str, Any], scope: Mapping[str, Any]) -> bool:
    """Evaluate a wait condition (``until``, ``fail_if``) over ``response``; undefined names raise."""
    from jinja2 import Undefined

    value = evaluate(_strip_braces(expression), {**scope, "response": response})
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return bool(value)


# ---------------------------------------------------------------------------------------------
# Re-sending
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Re-send after 429, 5xx (but 501 and 505) and connection errors/timeouts, ``retries`` times;
    wait ``Retry-After`` when the server gives it, else ``backoff`` doubled per attempt (with
    jitter), at most ``max_backoff``."""

    retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 600.0

    @staticmethod
    def retriable(status: int) -> bool:
        return status == 429 or (500 <= status <= 599 and status not in (501, 505))

    def delay(self, attempt: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        after = retry_after((headers or {}).get("retry-after"))
        if after is not None:
            return min(after, self.max_retry_after)
        base = min(self.backoff * (2**attempt), self.max_backoff)
        return base * random.uniform(0.5, 1.0)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
