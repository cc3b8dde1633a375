"""The Autopilot definition format, ``apiVersion: autopilot/v1``, described once.

Validation, the published JSON Schema (``definitions/schema/``), the plugin API's models and the
designer's property panels all derive from these classes. A new step kind is one model here, one
compiler in ``dag_factory/compilers`` and, where Airflow has none, one operator.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from autopilot_provider.definitions.bounded import PatternError, compile_pattern

API_VERSION = "autopilot/v1"

IDENTIFIER = r"^[A-Za-z][A-Za-z0-9_]*$"
Identifier = Annotated[
    str,
    Field(
        pattern=IDENTIFIER,
        max_length=200,
        description="Letters, digits and underscores, starting with a letter.",
    ),
]
DURATION = r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$|^P(\d+[YMWD])*(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"
Duration = Annotated[
    str,
    Field(
        pattern=DURATION,
        description="A duration such as `30s`, `5m`, `2h`, `1d12h` or ISO-8601 `PT2H`.",
        examples=["30s", "5m", "2h", "3d"],
    ),
]
Template = Annotated[
    str,
    Field(description="Text rendered with the sandboxed Jinja environment ({{ form.x }}, {{ steps.y.outputs.z }})."),
]
Expression = Annotated[
    str,
    Field(description="A sandboxed Jinja expression, e.g. `steps.ping.outputs.reachable and form.policy == 'gold'`."),
]
ContactRef = Annotated[
    str,
    Field(
        pattern=r"^(person|group|manager_of|user|email|owner_of):.+$|^(requester|owner)$",
        description="`person:ID`, `group:ID`, `manager_of:requester`, `user:AIRFLOW_USERNAME`, "
        "`email:ADDRESS`, `requester`, `owner` (the workflow's owner), `owner_of:RESOURCE_ID` or "
        "`owner_of:form.FIELD` (the owner of an inventory item, or of the one a form field picked).",
    ),
]
TRIGGER_RULES = (
    "all_success",
    "all_failed",
    "all_done",
    "all_done_min_one_success",
    "all_skipped",
    "one_success",
    "one_done",
    "one_failed",
    "none_failed",
    "none_failed_min_one_success",
    "none_skipped",
    "always",
)


#: An HTTP header name (RFC 9110 token characters).
HeaderName = Annotated[
    str,
    Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$", description="An HTTP header name, e.g. `Idempotency-Key`."),
]


class Strict(BaseModel):
    """Every definition object rejects unknown fields, so a typo never silently vanishes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------------------------
# Forms (JSON Schema properties, with the keys Airflow's trigger form understands)
# --------------------------------------------------------------------------------------------


class OptionsSource(Strict):
    """Where a field's choices come from when they are not a static `enum`: the items of one type in
    the `Resources` inventory (resolved when the workflow is compiled), or the items an API operation
    returns (fetched when the form is shown and checked again when the run starts)."""

    resources: str | None = Field(None, description="Resource type whose inventory items become the choices.")
    api: str | None = Field(None, description="Api definition id whose operation returns the choices.")
    operation: str | None = Field(
        None,
        description="With `api`: the `operationId` of a GET operation answering a JSON array of items, or an "
        "object with exactly one array property (e.g. `{items: [...]}`).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="With `api`: the operation's parameters by name, sent as written (choices are fetched "
        "before any run exists, so they are not templates).",
    )
    value: str | None = Field(
        None, description="Dotted path of the value in each item (default `id`), e.g. `hostname` or `spec.name`."
    )
    label: str | None = Field(
        None, description="Dotted path of the label in each item (default `name`; the value when missing)."
    )

    @property
    def value_path(self) -> str:
        return self.value or "id"

    @property
    def label_path(self) -> str:
        return self.label or "name"


#: The JSON Schema formats a form value is checked against (by jsonschema's FormatChecker with its
#: `format-nongpl` extra: tests/test_security_paths.py checks that each one is checked), and the
#: formats that only choose a widget. Any other `format` is an error: it would not be checked.
CHECKED_FORMATS = (
    "date",
    "date-time",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "uuid",
    "json-pointer",
    "relative-json-pointer",
    "regex",
)
WIDGET_FORMATS = ("multiline", "password")


def schema_pattern_problem(schema: Any, where: str = "items") -> str | None:
    """Why a field's free-form JSON Schema (``items``) cannot be used, or None: each ``pattern`` must
    compile with RE2 (see :func:`~autopilot_provider.definitions.bounded.compile_pattern`), and
    ``patternProperties`` is refused (jsonschema would match its keys with Python's backtracking
    ``re``)."""
    stack: list[tuple[Any, str]] = [(schema, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            if "patternProperties" in node:
                return f"{at}: patternProperties is not supported in forms (use properties or additionalProperties)"
            if isinstance(node.get("pattern"), str):
                try:
                    compile_pattern(node["pattern"])
                except PatternError as exc:
                    return f"{at}.pattern: invalid regular expression: {exc}"
            stack.extend((v, f"{at}.{k}") for k, v in node.items() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node) if isinstance(v, (dict, list)))
    return None


class FormField(Strict):
    """One request-form field: a JSON Schema property plus Airflow's Param UI keys."""

    type: Literal["string", "integer", "number", "boolean", "array", "object"] | list[str] = "string"
    title: str | None = None
    description: str | None = None
    description_md: str | None = None
    default: Any = None
    enum: list[Any] | None = None
    values_display: dict[str, str] | None = None
    examples: list[Any] | None = None
    format: str | None = None
    pattern: str | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    minLength: int | None = Field(None, ge=0)
    maxLength: int | None = Field(None, ge=0)
    minItems: int | None = Field(None, ge=0)
    maxItems: int | None = Field(None, ge=0)
    items: dict[str, Any] | None = None
    const: Any = None
    section: str | None = Field(None, description="Groups fields under a heading in the form.")
    options: OptionsSource | None = Field(
        None, description="Dynamic choices from the inventory or an API, instead of a static `enum`."
    )

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        # values are matched by RE2 (linear time), on the API server and in the _check_form task
        if value is not None:
            try:
                compile_pattern(value)
            except PatternError as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @field_validator("items")
    @classmethod
    def _item_patterns_compile(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            problem = schema_pattern_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("format")
    @classmethod
    def _format_is_checked(cls, value: str | None) -> str | None:
        if value is not None and value not in CHECKED_FORMATS + WIDGET_FORMATS:
            raise ValueError(
                f"unknown format {value!r}: it would not be checked; use one of {', '.join(CHECKED_FORMATS)}, "
                f"or {' or '.join(WIDGET_FORMATS)} for the widget"
            )
        return value

    def json_schema(self) -> dict[str, Any]:
        """The field as plain JSON Schema (the keys Airflow's Param accepts)."""
        schema = self.model_dump(exclude_none=True, exclude={"options"}, by_alias=True)
        if "default" not in self.model_fields_set:
            schema.pop("default", None)
        return schema


class Form(Strict):
    properties: dict[Identifier, FormField] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Step kinds
# --------------------------------------------------------------------------------------------


class RestOperation(Strict):
    """One operation of an `Api` definition, and how to send it (`task` and `wait` steps, a trigger's
    `rest` data point)."""

    api: str = Field(description="Id of an `Api` definition.")
    operation: str = Field(description="The operation's `operationId` in the Api's OpenAPI document.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Path, query, header and cookie parameters by name (templated; a value that is exactly "
        "one `{{ expr }}` keeps its type; a null optional parameter is left out).",
    )
    connection: str | None = Field(None, description="Airflow connection id; defaults to the Api's.")
    request_timeout: Duration = Field("60s", description="Timeout of each HTTP request.")
    http_retries: int = Field(
        3,
        ge=0,
        le=20,
        description="Re-sends after a 429, a 5xx or a connection error or timeout, with exponential "
        "backoff; a `Retry-After` header sets the wait.",
    )
    backoff: Duration = Field("1s", description="The first wait between re-sends (then doubled, at most 1m).")


class RestCall(RestOperation):
    """What `task` and `wait` steps share: one operation of an `Api` definition, and the outputs."""

    outputs: dict[str, Expression] = Field(
        default_factory=dict,
        description="Output name → sandboxed expression over `response` (`status`, `headers`, `body`), "
        "e.g. `response.body.job_id`. Without outputs the step's outputs are `{status, body}`.",
    )


class TaskStep(RestCall):
    """Call a REST operation imported from an OpenAPI document (an `Api` definition)."""

    body: Any = Field(None, description="The request body (templated), sent as JSON or as a form per the spec.")
    validate_response: Literal["fail", "warn", "off"] = Field(
        "fail", description="Check the response body against the operation's declared schema."
    )
    idempotency_header: HeaderName | None = Field(
        None,
        description="Send a key in this header (e.g. `Idempotency-Key`) that is the same for every try and "
        "re-send of this step in this run and different for every other step and run, so an API that honours "
        "such keys does not create twice when a step is retried after an answer was lost.",
    )


class AnsibleScript(Strict):
    playbook: str
    inventory: str | None = None
    extra_vars: dict[str, Template] = Field(default_factory=dict)


class TerraformScript(Strict):
    dir: str
    action: Literal["plan", "apply", "destroy"] = "plan"
    vars: dict[str, Template] = Field(default_factory=dict)


class SshScript(Strict):
    connection: str = Field(description="Airflow SSH connection id.")
    command: Template


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvName = Annotated[
    str,
    Field(pattern=ENV_NAME, max_length=100, description="An environment variable name: letters, digits, `_`."),
]
CONNECTION_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
ConnectionId = Annotated[
    str,
    Field(pattern=CONNECTION_ID, max_length=250, description="An Airflow connection id."),
]


class ScriptStep(Strict):
    """Run a script. Its outputs are what it writes to the file named by `$AUTOPILOT_OUTPUT` (`name=value`
    lines, `name<<DELIM` blocks or JSON-object lines; python: `output(name=value)`); stdout is only
    logged. The script sees an allow-listed environment, its `env` and its `connections`, nothing else."""

    bash: str | None = Field(
        None,
        description='Bash script. It is not templated: pass values through `env` and use them quoted, `"$HOST"`.',
    )
    python: str | None = Field(
        None,
        description="Python source run in its own interpreter. It is not templated: the values "
        "`form`, `steps`, `inputs` and `run` are provided as variables.",
    )
    ansible: AnsibleScript | None = None
    terraform: TerraformScript | None = None
    ssh: SshScript | None = None
    env: dict[EnvName, Template] = Field(
        default_factory=dict,
        description="Environment variables for the script; values are templates rendered as data "
        '(`{HOST: "{{ form.hostname }}"}`), never as shell code.',
    )
    connections: dict[EnvName, ConnectionId] = Field(
        default_factory=dict,
        description="Airflow connections the script uses, by environment prefix: `{BACKUP: backup_api}` "
        "gives BACKUP_HOST, BACKUP_PORT, BACKUP_LOGIN, BACKUP_PASSWORD, BACKUP_SCHEMA, BACKUP_EXTRA (JSON) "
        "and BACKUP_URI. Secrets are masked in the task log.",
    )
    cwd: str | None = None

    @model_validator(mode="after")
    def _exactly_one_language(self) -> ScriptStep:
        given = [k for k in SCRIPT_LANGUAGES if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a script needs exactly one of {', '.join(SCRIPT_LANGUAGES)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def language(self) -> str:
        return next(k for k in SCRIPT_LANGUAGES if getattr(self, k) is not None)


SCRIPT_LANGUAGES = ("bash", "python", "ansible", "terraform", "ssh")


class FormStep(Strict):
    """Ask named people or groups for more data mid-flow; the answers become the step's outputs.

    Any one of the people named in `from` may answer (the first answer counts); the fields are
    validated server-side like the request form."""

    from_: list[ContactRef] = Field(alias="from", min_length=1, description="Who may answer.")
    subject: Template | None = None
    body: Template | None = Field(None, description="Markdown shown above the fields.")
    properties: dict[Identifier, FormField] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    timeout: Duration | None = Field(None, description="Fail the step when nobody answered in time.")
    remind_every: Duration | None = None
    via: list[Literal["email", "slack"]] = Field(default_factory=lambda: ["email"])


class ApprovalStep(Strict):
    """Ask people and groups to approve. Each entry of `from` is one approver: a person, or a group
    where one member's vote decides for the group. `quorum` counts approvers: `all`, `any` or N."""

    from_: list[ContactRef] = Field(alias="from", min_length=1, description="The approvers.")
    quorum: Literal["all", "any"] | Annotated[int, Field(ge=1)] = "all"
    exclude_requester: bool = Field(True, description="The requester can never approve their own request.")
    subject: Template | None = None
    body: Template | None = Field(None, description="Markdown shown to approvers.")
    timeout: Duration | None = Field(None, description="How long approvers have, e.g. `2d`.")
    on_timeout: Literal["reject", "approve", "escalate"] = Field(
        "reject",
        description="`reject`/`approve`: the outcome when time is up (`timed_out`); `escalate`: "
        "`escalate_to` may decide alone for another `timeout`, then the request is rejected.",
    )
    escalate_to: list[ContactRef] = Field(default_factory=list)
    remind_every: Duration | None = Field(None, description="Remind approvers who have not voted.")
    comment_required_on_reject: bool = True
    via: list[Literal["email", "slack"]] = Field(
        default_factory=lambda: ["email"], description="How approval requests, reminders and escalations go out."
    )
    else_: list[Identifier] | Identifier | None = Field(
        None,
        alias="else",
        description="Steps to run when the request is not approved (rejected or timed out); without "
        "`else` a rejection fails the step and the run.",
    )

    @field_validator("else_", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> ApprovalStep:
        if isinstance(self.quorum, int) and self.quorum > len(self.from_):
            raise ValueError(f"quorum {self.quorum} is more than the {len(self.from_)} approvers in `from`")
        if self.on_timeout == "escalate" and not self.escalate_to:
            raise ValueError("on_timeout: escalate needs `escalate_to`")
        if self.on_timeout == "escalate" and not self.timeout:
            raise ValueError("on_timeout: escalate needs a `timeout`")
        return self


class DecisionCase(Strict):
    when: Expression
    then: list[Identifier] | Identifier = Field(min_length=1)

    @field_validator("then", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class DecisionStep(Strict):
    """Branch: `if`/`then`/`else`, or `cases` tried in order with a `default`."""

    if_: Expression | None = Field(None, alias="if")
    then: list[Identifier] | Identifier | None = None
    else_: list[Identifier] | Identifier | None = Field(None, alias="else")
    cases: list[DecisionCase] | None = None
    default: list[Identifier] | Identifier | None = None

    @field_validator("then", "else_", "default", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_form(self) -> DecisionStep:
        if self.cases is not None:
            if self.if_ is not None or self.then is not None or self.else_ is not None:
                raise ValueError("use either `if`/`then`/`else` or `cases`/`default`, not both")
            if not self.cases:
                raise ValueError("`cases` needs at least one case")
        else:
            if self.if_ is None or not self.then:
                raise ValueError("a decision needs `if` and `then` (or `cases`)")
            if self.default is not None:
                raise ValueError("`default` belongs to `cases`; use `else` with `if`")
        return self

    def branches(self) -> list[tuple[str, list[str]]]:
        """(expression, targets) pairs in evaluation order."""
        if self.cases is not None:
            return [(c.when, c.then) for c in self.cases]
        return [(self.if_ or "", self.then or [])]

    def fallback(self) -> list[str]:
        return (self.default if self.cases is not None else self.else_) or []

    def targets(self) -> list[str]:
        seen: dict[str, None] = {}
        for _, ids in self.branches():
            seen.update(dict.fromkeys(ids))
        seen.update(dict.fromkeys(self.fallback()))
        return list(seen)


class NotifySpec(Strict):
    to: list[ContactRef] = Field(min_length=1)
    via: list[Literal["email", "slack"]] = Field(default_factory=lambda: ["email"])
    subject: Template | None = None
    template: str | None = Field(None, description="A file under definitions/templates/.")
    body: Template | None = None


class TicketStep(Strict):
    """Open, update, annotate (work notes) or close a ServiceNow ticket through the Table API. The
    step's outputs are `number`, `sys_id`, `url`, `table` and `state` of the ticket."""

    system: Literal["servicenow"] = "servicenow"
    connection: str = Field("servicenow_default", description="Airflow connection id (type `autopilot_servicenow`).")
    action: Literal["create", "update", "comment", "close"]
    table: str = Field(
        "sc_request",
        pattern=r"^[A-Za-z0-9_]+$",
        description="The ServiceNow table, e.g. `sc_request`, `incident`. For update/comment/close without "
        "`ticket`: the table of the ticket it defaults to.",
    )
    ticket: Template | None = Field(
        None,
        description="Ticket number or sys_id for update/comment/close. Default: the first ticket a `create` "
        "step of this workflow opened in the run.",
    )
    fields: dict[str, Template] = Field(
        default_factory=dict,
        description="Record fields to set (templated), e.g. `short_description`, `urgency`, `assignment_group`.",
    )
    note: Template | None = Field(
        None,
        description="A work note added to the ticket (`work_notes`); required for `comment`. On `close` it is "
        "also the resolution note (`close_notes`).",
    )
    resolution: Literal["completed", "rejected", "cancelled"] | None = Field(
        None,
        description="For `close`: how the ticket is closed (default `completed`); sets the table's state "
        "fields (e.g. sc_request: `state` 3 and `request_state` closed_complete; rejected: 4 and "
        "closed_rejected). `fields` can override them.",
    )
    request_timeout: Duration = Field("60s", description="Timeout of each HTTP request.")
    http_retries: int = Field(
        3, ge=0, le=20, description="Re-sends after a 429, a 5xx or a connection error; `Retry-After` sets the wait."
    )
    backoff: Duration = Field("1s", description="The first wait between re-sends (then doubled, at most 1m).")

    @model_validator(mode="after")
    def _fits_action(self) -> TicketStep:
        if self.action == "create" and self.ticket is not None:
            raise ValueError("`ticket` names an existing ticket: it belongs to update, comment and close")
        if self.action == "comment" and not self.note:
            raise ValueError("a comment needs `note` (the work note to add)")
        if self.action == "update" and not self.fields and not self.note:
            raise ValueError("an update needs `fields` or a `note`")
        if self.resolution is not None and self.action != "close":
            raise ValueError("`resolution` belongs to action close")
        return self


class SqlPipe(Strict):
    connection: str
    query: str = Field(description="SQL with named parameters (:name); never templated.")
    parameters: dict[str, Template] = Field(default_factory=dict)


class TicketPipe(Strict):
    connection: str = "servicenow_default"
    table: str
    query: Template


class PipeStep(Strict):
    sql: SqlPipe | None = None
    tickets: TicketPipe | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PipeStep:
        if (self.sql is None) == (self.tickets is None):
            raise ValueError("a pipe needs exactly one of sql, tickets")
        return self


class WaitStep(RestCall):
    """Poll a REST operation from Airflow's triggerer (no worker slot held) until a condition holds."""

    until: Expression = Field(description="Expression over `response`, e.g. `response.body.status == 'done'`.")
    fail_if: Expression | None = Field(
        None,
        description="Expression over `response` that fails the step at once, e.g. `response.body.status == 'failed'`.",
    )
    every: Duration = Field("30s", description="Time between polls.")
    timeout: Duration = Field("1h", description="Give up (and fail the step) when `until` is still false after this.")


class MaintenanceWindow(Strict):
    """A recurring window: it opens each time `cron` fires and stays open for `duration`. Defined
    once on an inventory item or a contact group (`maintenance_windows:`), or inline in a `wait`."""

    id: Identifier | None = Field(None, description="A name to pick this window by (`window: {resource: X, id: ID}`).")
    cron: str = Field(
        description="When the window opens: a cron expression, e.g. `0 22 * * 6` (Saturdays at 22:00); a sixth "
        "field gives seconds.",
        examples=["0 22 * * 6", "0 2 * * *"],
    )
    duration: Duration = Field(description="How long the window stays open, e.g. `4h`.")
    timezone: str | None = Field(
        None, description="IANA time zone the cron is read in, e.g. `Europe/Paris`. Default: UTC."
    )


class WindowSpec(Strict):
    """The window a `wait` waits for: inline (`cron` + `duration` [+ `timezone`]) or the
    `maintenance_windows` of an inventory item (`resource`) or a contact group (`group`)."""

    cron: str | None = Field(None, description="Inline: when the window opens (cron).")
    duration: Duration | None = Field(None, description="Inline: how long it stays open.")
    timezone: str | None = Field(
        None, description="Inline: the cron's time zone. Default: the step's, else the workflow schedule's, else UTC."
    )
    resource: Template | None = Field(
        None, description="Id of an inventory item (templated, e.g. `{{ form.hostname }}`) whose windows apply."
    )
    group: Template | None = Field(None, description="Id of a contact group whose windows apply (templated).")
    id: Identifier | None = Field(None, description="With `resource`/`group`: only its window with this id.")

    @model_validator(mode="after")
    def _inline_or_reference(self) -> WindowSpec:
        inline = [k for k in ("cron", "duration", "timezone") if getattr(self, k) is not None]
        refs = [k for k in ("resource", "group") if getattr(self, k) is not None]
        if inline and refs:
            raise ValueError(
                f"a window is either inline (cron, duration, timezone) or a reference (resource or group, and id); "
                f"this one has {', '.join(inline)} and {', '.join(refs)}"
            )
        if refs:
            if len(refs) > 1:
                raise ValueError("a window reference names one of resource, group (got both)")
            return self
        if self.id is not None:
            raise ValueError("id picks one of a resource's or a group's windows: give resource or group with it")
        missing = [k for k in ("cron", "duration") if getattr(self, k) is None]
        if missing:
            raise ValueError(
                f"an inline window needs cron and duration (missing {', '.join(missing)}), "
                "or reference a window with resource or group"
            )
        return self

    @property
    def reference(self) -> tuple[str, str] | None:
        """("resource", id) or ("group", id) for a reference, None inline."""
        if self.resource is not None:
            return "resource", self.resource
        if self.group is not None:
            return "group", self.group
        return None


#: The fields only a REST `wait` has, and those only a wait in time has (`until` is both's).
REST_WAIT_FIELDS = frozenset(
    {"api", "operation", "params", "outputs", "connection", "request_timeout", "http_retries", "backoff"}
    | {"fail_if", "every", "timeout"}
)
TIME_WAIT_FIELDS = frozenset({"for", "for_", "window", "timezone"})


class TimeWaitStep(Strict):
    """Wait in time, in Airflow's triggerer (no worker slot held, restarts lose nothing): until a
    moment, for a duration from the step's first start, or until a maintenance window is open."""

    until: Template | None = Field(
        None,
        description="An ISO 8601 date-time (templated, e.g. `{{ form.start_at }}`); without an offset it is "
        "read in `timezone`. A moment in the past passes at once.",
        examples=["2030-01-01T09:00:00", "{{ form.not_before }}"],
    )
    for_: Duration | None = Field(
        None,
        alias="for",
        description="How long to wait, from the step's first start (a retry or a restart keeps the clock).",
    )
    window: WindowSpec | None = Field(
        None, description="Pass at once inside a window, else wait until the next one opens."
    )
    timezone: str | None = Field(
        None,
        description="IANA time zone for an `until` without offset and an inline window. Default: the "
        "workflow schedule's, else UTC.",
    )

    @model_validator(mode="after")
    def _exactly_one_wait(self) -> TimeWaitStep:
        given = [k for k, v in (("until", self.until), ("for", self.for_), ("window", self.window)) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "a wait in time needs exactly one of until, for, window"
                + (f" (got {', '.join(given)})" if given else "")
                + ("" if given else "; a REST wait also needs api and operation")
            )
        return self

    @property
    def mode(self) -> str:
        return "until" if self.until is not None else "for" if self.for_ is not None else "window"


def _wait_shape(value: Any) -> str:
    if isinstance(value, dict):
        return "rest" if REST_WAIT_FIELDS & value.keys() else "time"
    return "time" if isinstance(value, TimeWaitStep) else "rest"


#: A `wait` step: a REST poll when it has REST fields (`api`, `operation`, ...), else a wait in time.
WaitSpec = Annotated[
    Annotated[WaitStep, Tag("rest")] | Annotated[TimeWaitStep, Tag("time")],
    Discriminator(_wait_shape),
]


# --------------------------------------------------------------------------------------------
# Assets (Airflow's data-aware scheduling)
# --------------------------------------------------------------------------------------------

AssetUri = Annotated[
    str,
    Field(
        description="An Airflow asset URI, e.g. `s3://bucket/key` or `autopilot://alerts/disk_full` (the "
        "asset's name is its URI, as with `Asset(uri)` in Python).",
    ),
]


class AssetExpr(Strict):
    """An asset by `uri` and/or `name` (as Airflow's `Asset(name=, uri=)`), or a condition over
    assets: `any` (one of them updated) or `all` (each updated since the last run)."""

    uri: str | None = Field(None, description="The asset's URI.")
    name: str | None = Field(None, description="The asset's name (default: uri).")
    any_: list[AssetCondition] | None = Field(None, alias="any", min_length=1, description="Run when any updates.")
    all_: list[AssetCondition] | None = Field(None, alias="all", min_length=1, description="Run when all updated.")

    @model_validator(mode="after")
    def _one_form(self) -> AssetExpr:
        forms = [k for k, v in (("any", self.any_), ("all", self.all_)) if v is not None]
        named = self.uri is not None or self.name is not None
        if len(forms) + named != 1:
            raise ValueError("an asset is a uri and/or name, or one of any, all")
        return self


def _asset_shape(value: Any) -> str:
    return "uri" if isinstance(value, str) else "expr"


#: One asset (its URI as text, or `{uri, name}`) or a condition `{any: [...]}` / `{all: [...]}`.
AssetCondition = Annotated[
    Annotated[AssetUri, Tag("uri")] | Annotated[AssetExpr, Tag("expr")],
    Discriminator(_asset_shape),
]
AssetExpr.model_rebuild()
#: The tags of the discriminated unions above, which pydantic puts in error locations.
UNION_TAGS = frozenset({"rest", "time", "uri", "expr"})


class UseStep(Strict):
    """Call a reusable Function; it becomes a TaskGroup."""

    function: Identifier
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class WorkflowStep(Strict):
    """Start a run of another workflow, as this run's requester (it shows in their *My requests*),
    with form values mapped from this run; wait for it to end (in Airflow's triggerer: no worker slot
    is held) or not. The step's outputs are `workflow`, `run_id`, `state` (the run's state: `success`
    or `failed` once waited for, `queued` without waiting) and `outputs` (the run's workflow's
    declared `outputs`). A retried or cleared step finds the run it started and does not start
    another."""

    id: Identifier = Field(description="The workflow to start (its id).")
    form: dict[str, Any] = Field(
        default_factory=dict,
        description="Its form values: constants, or templates over this run (`{{ form.size }}`, "
        "`{{ steps.check.outputs.host }}`; a value that is exactly one `{{ expr }}` keeps its type). Checked "
        "against its form; a field left out takes its default. Its `requester` field, if it has one, is "
        "this run's requester and is not mapped.",
    )
    wait: bool = Field(True, description="Wait until the run ends (`false`: start it and go on at once).")
    on_failure: Literal["fail", "continue"] = Field(
        "fail",
        description="When the run fails: `fail` this step (and this run), or `continue` with `state: failed` "
        "in the outputs, for a decision to act on.",
    )
    every: Duration = Field("10s", description="How often the triggerer looks at the run while waiting.")

    @model_validator(mode="after")
    def _waiting_only(self) -> WorkflowStep:
        if not self.wait:
            given = [k for k in ("on_failure", "every") if k in self.model_fields_set]
            if given:
                verb = "belongs" if len(given) == 1 else "belong"
                raise ValueError(f"{' and '.join(given)} {verb} to a step that waits (wait: true)")
        return self


class MetricStep(Strict):
    name: str
    value: Template
    labels: dict[str, Template] = Field(default_factory=dict)


#: Each step kind and the model of its body (`wait` is a union: a REST poll or a wait in time).
STEP_KINDS: dict[str, Any] = {
    "task": TaskStep,
    "script": ScriptStep,
    "form": FormStep,
    "approval": ApprovalStep,
    "decision": DecisionStep,
    "notify": NotifySpec,
    "ticket": TicketStep,
    "pipe": PipeStep,
    "wait": WaitSpec,
    "use": UseStep,
    "workflow": WorkflowStep,
    "metric": MetricStep,
}


class Step(Strict):
    """One step: an id, exactly one kind, and how it is scheduled."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"oneOf": [{"required": [kind]} for kind in STEP_KINDS]},
    )

    id: Identifier
    title: str | None = None
    description: str | None = None
    after: list[Identifier] | Identifier | None = Field(
        None, description="Steps this one waits for. Default: the previous step in the list."
    )
    retries: int | None = Field(None, ge=0, le=100)
    retry_delay: Duration | None = None
    timeout: Duration | None = None
    trigger_rule: Literal[TRIGGER_RULES] | None = None  # type: ignore[valid-type]
    outlets: list[AssetCondition] = Field(
        default_factory=list,
        description="Airflow assets this step updates when it succeeds (URIs or `{uri, name}`): DAGs and "
        "workflows scheduled on them run.",
    )

    task: TaskStep | None = None
    script: ScriptStep | None = None
    form: FormStep | None = None
    approval: ApprovalStep | None = None
    decision: DecisionStep | None = None
    notify: NotifySpec | None = None
    ticket: TicketStep | None = None
    pipe: PipeStep | None = None
    wait: WaitSpec | None = None
    use: UseStep | None = None
    workflow: WorkflowStep | None = None
    metric: MetricStep | None = None

    @field_validator("after", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("wait", mode="before")
    @classmethod
    def _one_wait_shape(cls, value: Any) -> Any:
        if isinstance(value, dict):
            rest = [k for k in value if k in REST_WAIT_FIELDS]
            time = [k for k in value if k in TIME_WAIT_FIELDS]
            if rest and time:
                raise ValueError(
                    "a wait is either a REST poll (api, operation, until, every, timeout, ...) or a wait in time "
                    f"(one of until, for, window); this one mixes {', '.join(rest)} with {', '.join(time)}"
                )
        return value

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Step:
        given = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            detail = f" (got {', '.join(given)})" if given else ""
            raise ValueError(f"a step needs exactly one of {', '.join(STEP_KINDS)}{detail}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> BaseModel:
        return getattr(self, self.kind)


# --------------------------------------------------------------------------------------------
# Workflow-level pieces
# --------------------------------------------------------------------------------------------


class Schedule(Strict):
    """When runs start: on a `cron`, when Airflow `assets` are updated, or on either."""

    cron: str | None = Field(None, description="A cron expression or a preset such as `@daily`.")
    assets: list[AssetCondition] | AssetCondition | None = Field(
        None,
        description="Run when these Airflow assets are updated (by a DAG's outlet, a step's `outlets` or an "
        "asset event): a list means all of them, `{any: [...]}` any one, `{all: [...]}` each; they nest.",
    )
    timezone: str = "UTC"
    start_date: str | None = Field(None, description="ISO date; default: the date the workflow was first loaded.")
    catchup: bool = False

    @model_validator(mode="after")
    def _cron_or_assets(self) -> Schedule:
        if self.cron is None and self.assets is None:
            raise ValueError("a schedule needs cron, assets or both")
        return self


class Timer(Strict):
    """An SLA countdown across the run (an Airflow Deadline Alert)."""

    id: Identifier
    within: Duration
    notify: NotifySpec


class Notifications(Strict):
    on_start: NotifySpec | None = None
    on_success: NotifySpec | None = None
    on_failure: NotifySpec | None = None


class StepDefaults(Strict):
    retries: int | None = Field(None, ge=0, le=100)
    retry_delay: Duration | None = None
    timeout: Duration | None = None


class Header(Strict):
    apiVersion: Literal["autopilot/v1"] = Field(description="Always `autopilot/v1`.")
    id: Identifier
    title: str | None = None
    description: str | None = None


class Workflow(Header):
    kind: Literal["Workflow"]
    owner: str | None = Field(
        None,
        description="Who owns the workflow: a contact (`group:storage`, `person:dave`, `user:NAME`, "
        "`email:ADDRESS`) that `to: [owner]` reaches, or free text. Airflow shows it as the DAG's owner.",
    )
    tags: list[str] = Field(default_factory=list)
    schedule: str | Schedule | None = Field(
        None, description="Cron, a preset like `@daily`, `{assets: [...]}` (see Schedule), or null (manual)."
    )
    form: Form = Field(default_factory=Form)
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    steps: list[Step] = Field(min_length=1)
    outputs: dict[Identifier, Template] = Field(
        default_factory=dict,
        description="What a run gives the workflow that started it with a `workflow` step (its `outputs`): name → "
        "template over `form`, `steps` and `run`, worked out when the steps are done (the task `_outputs`).",
    )
    timers: list[Timer] = Field(default_factory=list)
    notifications: Notifications = Field(default_factory=Notifications)


class FunctionInput(FormField):
    required: bool = False

    def json_schema(self) -> dict[str, Any]:
        schema = super().json_schema()
        schema.pop("required", None)
        return schema


class Function(Header):
    kind: Literal["Function"]
    inputs: dict[Identifier, FunctionInput] = Field(default_factory=dict)
    outputs: dict[Identifier, Template] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)


class Person(Strict):
    id: Identifier
    name: str
    email: str | None = None
    slack: str | None = Field(None, description="Slack member id, e.g. U0123ABC.")
    username: str | None = Field(None, description="Airflow user name.")
    manager: str | None = Field(None, description="Person id of this person's manager.")


class Group(Strict):
    id: Identifier
    name: str | None = None
    members: list[str] = Field(default_factory=list, description="Person ids.")
    email: str | None = None
    slack_channel: str | None = None
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list, description="Windows `wait: {window: {group: ID}}` steps wait for."
    )


class Contacts(Header):
    kind: Literal["Contacts"]
    people: list[Person] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)


class Resource(Strict):
    id: str
    type: str = Field(description="machine, device, subnet, array, ...")
    name: str | None = None
    owner: str | None = Field(
        None,
        description="Who owns the item: a contact (`group:ID`, `person:ID`, `user:NAME`, `email:ADDRESS`) that "
        "`owner_of:ID` and `owner_of:form.FIELD` reach, or free text.",
    )
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list, description="Windows `wait: {window: {resource: ID}}` steps wait for."
    )


class Resources(Header):
    kind: Literal["Resources"]
    items: list[Resource] = Field(default_factory=list)


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def spec_reference_problem(spec: str) -> str | None:
    """Why an Api's ``spec:`` is not a relative path (None when it is one), worded to follow the
    field's name. That it stays inside the definitions folder, and names a regular file, is checked
    where the folder is known."""
    if not spec.strip():
        return "must name the document: a path relative to this file"
    if _URL_SCHEME.match(spec):
        return (
            f"{spec!r} is a URL; the document must be a file inside the definitions folder, named relative to "
            "this file (import a document from a URL with `autopilot import-openapi` or POST /apis)"
        )
    if spec.startswith(("/", "\\", "~")) or "\\" in spec or "\x00" in spec:
        return f"{spec!r} must be a relative path (with '/') inside the definitions folder"
    return None


class Api(Header):
    kind: Literal["Api"]
    spec: str = Field(
        description="Path of the OpenAPI document, relative to this file and inside the definitions folder "
        "(a regular file; import documents from URLs with `autopilot import-openapi`)."
    )
    connection: str = Field(description="Default Airflow connection id (base URL and credentials).")

    @field_validator("spec")
    @classmethod
    def _relative_spec(cls, value: str) -> str:
        problem = spec_reference_problem(value)
        if problem:
            raise ValueError(problem)
        return value


# --------------------------------------------------------------------------------------------
# Alerts: events from outside (signed webhooks) that start workflows
# --------------------------------------------------------------------------------------------

ALERT_SCHEMES = ("github", "stripe", "standard", "bearer")
#: Schemes whose signature carries a timestamp (checked against `tolerance`).
TIMESTAMPED_SCHEMES = ("stripe", "standard")
#: An alert id that would clash with the API's own paths under /alerts.
RESERVED_ALERT_IDS = ("deliveries",)
#: Keys that would put a secret into a definition: secrets live in the Airflow connection only.
SECRET_KEY = re.compile(r"(?i)(secret|passw|token|api_?key|private|credential|signing|hmac|^key$)")
#: Values that look like a secret pasted where a connection id belongs.
SECRET_VALUE = re.compile(r"^(whsec_|sk_(live|test)_|rk_(live|test)_|ghp_|gho_|github_pat_|xox[abpr]-|Bearer\s)")
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class AlertAuth(Strict):
    """How a sender proves it is who it says: an HMAC-SHA256 signature over the raw body (GitHub
    `X-Hub-Signature-256`, Stripe `Stripe-Signature: t=…,v1=…`, Standard Webhooks 1.0
    `webhook-id`/`webhook-timestamp`/`webhook-signature`) or a bearer token. The secret (or token) is
    the password of the Airflow connection `connection`; never write it here."""

    scheme: Literal["github", "stripe", "standard", "bearer"] = Field(
        description="`github` (X-Hub-Signature-256), `stripe` (Stripe-Signature t=,v1=), `standard` "
        "(Standard Webhooks 1.0; the secret is `whsec_` + base64) or `bearer` (Authorization: Bearer <token>)."
    )
    connection: ConnectionId = Field(
        description="Airflow connection id whose password is the signing secret or the bearer token."
    )
    tolerance: Duration | None = Field(
        None,
        description="stripe and standard only: how far the signed timestamp may be from now (default 5m).",
    )

    @classmethod
    def unknown_field_hint(cls, name: str) -> str | None:
        if SECRET_KEY.search(name):
            return (
                "secrets never go in a definition: put the secret (or token) in the password of the "
                "Airflow connection named by `connection`"
            )
        return None

    @field_validator("connection")
    @classmethod
    def _not_a_secret(cls, value: str) -> str:
        if SECRET_VALUE.match(value):
            raise ValueError(
                "this looks like a secret, not a connection id: keep the secret in the password of an Airflow "
                "connection and name the connection here"
            )
        return value


class AlertDeliveryId(Strict):
    """Where a delivery's id comes from (deliveries with the same id start their runs once)."""

    header: str | None = Field(
        None, pattern=HEADER_NAME, max_length=100, description="A request header, e.g. X-Request-Id."
    )
    expression: Expression | None = Field(
        None, description="A sandboxed expression over `payload` and `headers`, e.g. `payload.id`."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> AlertDeliveryId:
        if (self.header is None) == (self.expression is None):
            raise ValueError("delivery_id needs exactly one of header, expression")
        return self


class AlertRoute(Strict):
    """One workflow an alert starts: the target, when, with which form values and as whom."""

    id: Identifier
    workflow: Identifier = Field(description="The workflow to start (its id).")
    when: Expression | None = Field(None, description="Start it only when this holds, e.g. `event.status == 'firing'`.")
    form: dict[str, Any] = Field(
        default_factory=dict,
        description="The workflow's form values: constants, or templates over `payload`, `headers`, `event` "
        "and `alert` (a value that is exactly one `{{ expr }}` keeps its type). Checked against the form.",
    )
    requester: Template = Field(
        description="Who the run is for (it shows in their *My requests*): a person id of the contacts (with "
        "a `username`), or a template giving a person id, Airflow user name or e-mail of the contacts."
    )
    asset: str | None = Field(
        None,
        pattern=r"^\S+$",
        max_length=1500,
        description="Also emit an event of this Airflow Asset (its URI), so plain DAGs scheduled on it run.",
    )


class Alert(Header):
    """Events from outside: an endpoint (`POST /autopilot/api/v1/alerts/<id>`) that a monitoring tool,
    a ticketing system or a CI pipeline calls, authenticated by a signature or token, whose deliveries
    start workflows through the same validated path as the portal."""

    kind: Literal["Alert"]
    owner: ContactRef | None = Field(None, description="Who owns this event source, e.g. `group:storage`.")
    auth: AlertAuth
    delivery_id: AlertDeliveryId | None = Field(
        None,
        description="Default per scheme: github X-GitHub-Delivery, standard webhook-id, stripe `payload.id`; "
        "else the sha256 of the raw body.",
    )
    match: list[Expression] = Field(
        default_factory=list,
        description="Expressions over `payload` and `headers` that must all hold, else the delivery is "
        "filtered out, e.g. `payload.severity in ['critical', 'major']`.",
    )
    for_each: Expression | None = Field(
        None,
        description="One delivery carrying several events (Alertmanager's `payload.alerts`): each item is `event`.",
    )
    routes: list[AlertRoute] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_ALERT_IDS:
            raise ValueError(f"'{value}' is reserved (the API's path /alerts/{value}); choose another id")
        return value


# --------------------------------------------------------------------------------------------
# Triggers: data points read on a schedule that raise alerts
# --------------------------------------------------------------------------------------------


class MetricQuery(Strict):
    """A metric read from a monitoring system (not supported yet)."""

    query: str = Field(description="The query, e.g. PromQL `avg(node_filesystem_avail_bytes)`.")
    connection: ConnectionId | None = Field(None, description="Airflow connection id of the metrics system.")


#: The data points a trigger can read, in the order they are named in messages.
TRIGGER_SOURCES = ("rest", "sql", "metric")
#: What a trigger's event holds: the payload it delivers to its Alert (`payload.status`, ...) and
#: what its notification templates see as `trigger`.
TRIGGER_EVENT_FIELDS = ("id", "trigger", "status", "value", "since", "at", "sequence", "title", "owner")


class Trigger(Header):
    """A data point read on a schedule (an ordinary Airflow DAG) whose condition, once it has held
    for `for`, fires — raising the Alert `alert` (its routes start workflows) and notifying `notify`
    — and resolves when `resolve` holds. The firing/resolved state is kept in an Airflow Variable, so
    a flapping value raises one alert and a restart neither repeats nor loses a transition."""

    kind: Literal["Trigger"]
    owner: ContactRef | None = Field(None, description="Who owns this trigger, e.g. `group:storage`.")
    schedule: str | Schedule = Field(
        description="When the data point is read: cron (`*/5 * * * *`), a preset such as `@hourly`, or "
        "`{cron, timezone, start_date}` (`catchup` stays off: a trigger reads the current value)."
    )
    start_paused: bool = Field(
        False, description="Create the DAG paused: the trigger reads nothing until someone switches it on."
    )
    rest: RestOperation | None = Field(
        None, description="The data point is the answer of this REST operation (an Api definition's)."
    )
    sql: SqlPipe | None = Field(None, description="The data point is a SQL query's result (not supported yet).")
    metric: MetricQuery | None = Field(None, description="The data point is a metric (not supported yet).")
    value: Expression = Field(
        "response.body",
        description="The value, a sandboxed expression over `response` (`status`, `headers`, `body`), e.g. "
        "`response.body.used_percent`.",
    )
    condition: Expression = Field(
        description="When the trigger fires: an expression over `value` (and `response`), e.g. `value >= 90`."
    )
    for_: Duration | None = Field(
        None,
        alias="for",
        description="How long `condition` must hold (on consecutive reads) before the trigger fires; default: at once.",
    )
    resolve: Expression | None = Field(
        None,
        description="When a firing trigger resolves: an expression over `value` (and `response`), e.g. "
        "`value < 80` (hysteresis: a value between the two thresholds changes nothing). Default: "
        "`not (condition)`.",
    )
    alert: Identifier | None = Field(
        None,
        description="The Alert raised on firing and on resolving (payload `status: firing|resolved`): its "
        "routes start workflows, emit asset events and log the delivery.",
    )
    notify: NotifySpec | None = Field(
        None, description="Also notify people when the trigger fires and when it resolves (`trigger` in templates)."
    )
    retries: int = Field(2, ge=0, le=100, description="Task retries of one read (a failed delivery is re-sent).")
    retry_delay: Duration = Field("30s", description="Wait between retries.")
    timeout: Duration | None = Field(None, description="Fail a read that takes longer than this.")

    @model_validator(mode="after")
    def _consistent(self) -> Trigger:
        given = [k for k in TRIGGER_SOURCES if getattr(self, k) is not None]
        if len(given) != 1:
            detail = f" (got {', '.join(given)})" if given else ""
            raise ValueError(f"a trigger needs exactly one data point: one of {', '.join(TRIGGER_SOURCES)}{detail}")
        if self.alert is None and self.notify is None:
            raise ValueError("a trigger needs `alert` or `notify` (or both): what firing and resolving do")
        return self

    @property
    def source(self) -> str:
        return next(k for k in TRIGGER_SOURCES if getattr(self, k) is not None)


KINDS: dict[str, type[Header]] = {
    "Workflow": Workflow,
    "Function": Function,
    "Contacts": Contacts,
    "Resources": Resources,
    "Api": Api,
    "Alert": Alert,
    "Trigger": Trigger,
}
#: The kinds compiled into Airflow DAGs (their ids are DAG ids: one namespace).
DAG_KINDS = ("Workflow", "Trigger")

Definition = Workflow | Function | Contacts | Resources | Api | Alert | Trigger
