"""The human-in-the-loop request: what an ``approval`` or ``form`` step asks, as the task hands it to
the API server. No Airflow import: the operators (worker) build it, the approvals service (API
server) reads it back from the XCom and keeps it in ``autopilot_approval.spec``.

Versions of the stored form:

* 1 — the previous release's plain dict (``version: 1``, or no version at all in rows written by
  hand), read through ``.get()`` with its defaults spread over the readers. It has the same keys as
  version 2; :func:`load_request` reads it with the defaults below.
* 2 — :class:`HitlRequest` dumped with every default written out.

The step's rules as its DAG version keeps them (``autopilot_rules`` in the serialized DAG, which the
API server reads to hold a run to the rules it started with) are :class:`HitlRules`.

The defaults (quorum ``all``, the requester excluded, reject on timeout, a comment to reject, by
e-mail) are declared here once. The contract's other names (the XCom key, the synthetic HITL user,
the options) live here too, so that neither side has to import the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autopilot_provider.repository.folder import contacts_directory

#: The version :class:`HitlRequest` writes; :func:`load_request` reads this one and version 1.
VERSION = 2
#: The XCom key under which the task hands its request to the API server.
REQUEST_XCOM_KEY = "autopilot_request"
#: The operator attribute holding the step's rules (who answers, quorum, …) as JSON. It is part of
#: the serialized DAG, so the API server reads the rules of the DAG version a run started with.
RULES_FIELD = "autopilot_rules"
#: The HITL assignee and responder that stand for "Autopilot, after its own checks".
AUTOPILOT_USER_ID = "autopilot:quorum"
AUTOPILOT_USER = {"id": AUTOPILOT_USER_ID, "name": "Autopilot (answer in the Autopilot inbox)"}
#: The HITL options of an approval and of a form.
APPROVE, REJECT, SUBMIT = "Approve", "Reject", "Submit"
#: How long after Autopilot's own deadline Airflow's scheduler steps in (when no API server ran).
BACKSTOP = timedelta(minutes=10)

Kind = Literal["approval", "form"]
Quorum = Literal["all", "any"] | int
OnTimeout = Literal["reject", "approve", "escalate"]


class _Model(BaseModel):
    # unknown keys (written by a newer release during an upgrade) are ignored, not refused
    model_config = ConfigDict(extra="ignore")


class Person(_Model):
    """Someone whose answer counts (or the requester): the Airflow ``username`` is what votes."""

    id: str | None = None
    username: str | None = None
    name: str | None = None
    email: str | None = None
    slack: str | None = None


class Slot(_Model):
    """One contact reference of ``from`` (or ``escalate_to``): the people whose vote counts for it,
    and a group's own mailing address and Slack channel for its notices."""

    ref: str = ""
    label: str = ""
    kind: str = "person"
    email: str | None = None
    slack: str | None = None
    members: list[Person] = Field(default_factory=list)

    def usernames(self) -> set[str]:
        return {m.username for m in self.members if m.username}


class StepForm(_Model):
    """A mid-flow form's fields as its task hands them over (:func:`autopilot_provider.repository.forms.step_form`):
    the JSON Schema and uiSchema with the inventory's choices resolved when the DAG was compiled, and
    ``dynamic``, the fields whose choices an API gives, fetched when the form is shown and answered."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    ui_schema: dict[str, Any] = Field(default_factory=dict)
    dynamic: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class HitlRequest(_Model):
    """An approval or mid-flow form request, as the task resolved it when it started waiting."""

    version: int = VERSION
    kind: Kind = "approval"
    step_id: str | None = None
    title: str | None = None
    workflow_title: str | None = None
    subject: str | None = None
    body: str | None = None
    requester: Person = Field(default_factory=Person)
    request: dict[str, Any] = Field(default_factory=dict, description="The run's request form values.")
    slots: list[Slot] = Field(default_factory=list, description="Who answers: one slot per `from` reference.")
    timeout_seconds: float | None = None
    remind_every_seconds: float | None = None
    via: list[str] = Field(default_factory=lambda: ["email"])
    definitions: str | None = Field(None, description="The definitions folder the task read.")
    # approvals
    quorum: Quorum = "all"
    exclude_requester: bool = True
    on_timeout: OnTimeout = "reject"
    escalate_to: list[Slot] = Field(default_factory=list)
    comment_required_on_reject: bool = True
    # forms only
    form: StepForm | None = None

    def as_dict(self) -> dict[str, Any]:
        """The stored (and XCom) form: JSON types, every default written out."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def headline(self) -> str | None:
        return self.subject or self.title


class HitlRules(_Model):
    """A step's rules as its definition says them — who answers (contact references, unresolved)
    and how it is decided — kept in the serialized DAG (the operator's ``autopilot_rules``), so that
    a run keeps the rules of the DAG version it started with. Only the fields a step sets are
    written: a form has no quorum."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    from_: list[str] = Field(default_factory=list, alias="from")
    timeout_seconds: float | None = None
    quorum: Quorum | None = None
    exclude_requester: bool | None = None
    on_timeout: OnTimeout | None = None
    escalate_to: list[str] | None = None
    comment_required_on_reject: bool | None = None

    def to_json(self) -> str:
        """The operator attribute's text (stable: sorted keys, only the fields set)."""
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_unset=True), sort_keys=True)

    def settings(self) -> dict[str, Any]:
        """The fields set other than who answers: what a run's request takes over as they are."""
        return self.model_dump(mode="json", exclude_unset=True, exclude={"from_", "escalate_to"})


def default(field: str) -> Any:
    """The default of one of :class:`HitlRequest`'s fields (the operators' argument defaults)."""
    return HitlRequest.model_fields[field].get_default(call_default_factory=True)


def load_request(data: Mapping[str, Any] | str | bytes) -> HitlRequest:
    """A stored or handed-over request, whatever version wrote it (see the module docstring)."""
    if isinstance(data, str | bytes):
        data = json.loads(data)
    if not isinstance(data, Mapping):
        raise ValueError(f"a human-in-the-loop request is an object, not {type(data).__name__}")
    version = data.get("version") or 1
    if version == 1:
        # the same keys as version 2, defaults left to the reader: the model's defaults apply
        return HitlRequest.model_validate({**data, "version": VERSION})
    if version == VERSION:
        return HitlRequest.model_validate(data)
    raise ValueError(f"a human-in-the-loop request of version {version}: written by a newer Autopilot")


def resolve_slots(refs: Sequence[str], scope: Mapping[str, Any], definitions: str | None) -> list[Slot]:
    """Each contact reference → one slot: who it is, and the people (with Airflow user names) whose
    vote counts for it. A group's mailing address and Slack channel are kept for its notifications."""

    directory = contacts_directory(definitions)
    slots = []
    for ref in refs:
        recipient = directory.resolve(ref, scope)
        members = list(recipient.members) if recipient.kind == "group" else [recipient]
        group = recipient.kind == "group"
        slots.append(
            Slot(
                ref=ref,
                label=recipient.label(),
                kind=recipient.kind,
                email=recipient.email if group else None,
                slack=recipient.slack if group else None,
                members=[person(member) for member in members],
            )
        )
    return slots


def person(recipient: Any) -> Person:
    """A resolved contact (``repository.contacts.Recipient``) as the request names them."""
    return Person(
        id=recipient.id,
        username=recipient.username,
        name=recipient.label(),
        email=recipient.email,
        slack=recipient.slack,
    )
