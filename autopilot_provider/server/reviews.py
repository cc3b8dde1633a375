"""Four-eyes review of definition changes: which changes need a second person, and the review itself.
API server only; :class:`~autopilot_provider.server.definition_store.DefinitionStore` holds a
:class:`Reviews` and routes every create and update through :meth:`Reviews.reasons`.

``[autopilot] review_required_for`` names what needs review: ``approvals`` (an approval step added,
removed or changed in who approves and how, or what can run without an approval's yes grows:
:func:`review_facts`, :func:`ungated`) and ``scripts`` (code added, removed or changed). Such a change
is stored as a revision in state ``pending_review`` and the file is left alone (:meth:`Reviews.propose`);
someone other than its author approves it, which writes the file if it is still what the change was
based on, or rejects it (:meth:`Reviews.decide`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine

from autopilot_provider import config
from autopilot_provider.definitions.code import text_code_parts
from autopilot_provider.definitions.graph import dependencies, downstream_of_decision
from autopilot_provider.definitions.source import quick_header
from autopilot_provider.repository.folder import Project, atomic_write
from autopilot_provider.server import revisions
from autopilot_provider.server.errors import AlreadyExists, Conflict, Forbidden, InvalidInput
from autopilot_provider.server.revisions import (
    APPLIED,
    PENDING_REVIEW,
    REJECTED,
    Revision,
    SaveResult,
    Validation,
    content_version,
)
from autopilot_provider.server.tables import _now, _require_tables, revision_table

log = logging.getLogger(__name__)

#: What ``[autopilot] review_required_for`` may name.
REVIEWABLE = ("approvals", "scripts")

#: The approval rules a change is compared on (``timeout`` also comes from the step's own; ``else_``:
#: what runs when the request is not approved).
APPROVAL_RULES = ("from_", "quorum", "exclude_requester", "escalate_to", "timeout", "on_timeout", "else_")

#: Trigger rules under which a step runs only if every upstream step succeeded, or at least one did;
#: under any other rule (``all_done``, ``always``, ``one_failed``…) a step runs whatever an approval
#: upstream decided, so it counts as not behind the approval.
ALL_SUCCEED = ("all_success",)

ONE_SUCCEEDS = ("one_success", "none_failed_min_one_success", "all_done_min_one_success")

#: Trigger rules under which a failed upstream step (an approval without ``else``, rejected) stops a step.
STOPPED_BY_FAILURE = ("all_success", "none_failed", "none_failed_min_one_success")


def review_required_for() -> set[str]:
    """``[autopilot] review_required_for`` (default ``approvals``): a comma list of approvals, scripts."""
    wanted = set(config.get_list("review_required_for"))
    unknown = wanted - set(REVIEWABLE)
    if unknown:
        log.warning("[autopilot] review_required_for: unknown %s (known: %s)", sorted(unknown), ", ".join(REVIEWABLE))
    return wanted & set(REVIEWABLE)


# -- what a review guards --------------------------------------------------------------------


def review_facts(definition: Any) -> dict[str, dict[str, Any]]:
    """The approval rules a review guards: a workflow's or function's approval rules (with ``else``)
    by step id, and in contacts who approves (a person's Airflow user name and manager, a group's
    members). Other kinds (and content that does not load) have none."""
    facts: dict[str, Any] = {}
    for step in getattr(definition, "steps", None) or []:
        if step.approval is not None:
            rules = step.approval.model_dump(include=set(APPROVAL_RULES), mode="json")
            rules["timeout"] = rules.get("timeout") or step.timeout
            facts[step.id] = rules
    # contacts say who a `from` entry is: which Airflow user a person is, their manager, group members
    for person in getattr(definition, "people", None) or []:
        if person.username or person.manager:
            facts[f"person:{person.id}"] = [person.username, person.manager]
    for group in getattr(definition, "groups", None) or []:
        facts[f"group:{group.id}"] = sorted(group.members)
    return facts


def not_behind_approval(definition: Any) -> dict[str, Any]:
    """The steps of a definition with approvals that can run when no approval says yes: step id → the
    step. Not approved, an approval with ``else`` skips its other direct downstream steps (whatever
    their trigger rule) and one without fails, which stops a step whose trigger rule needs its
    upstream to succeed or not fail. Beyond that a step runs when it has no upstream step, or, by its
    trigger rule, when all (``all_success``) or one (the ``one_success`` family) of its upstream steps
    can run and succeed, or always (any other rule: counted as running, to be safe). Empty for a
    definition without approvals."""
    steps = list(getattr(definition, "steps", None) or [])
    approvals = {step.id: step.approval for step in steps if step.approval is not None}
    if not approvals:
        return {}
    upstream = dependencies(steps)
    joins = downstream_of_decision(steps)
    reached: dict[str, Any] = {}
    changed = True
    while changed:  # grows monotonically: at most len(steps) rounds
        changed = False
        for step in steps:
            if step.id in reached:
                continue
            rule = step.trigger_rule or ("none_failed_min_one_success" if step.id in joins else "all_success")
            parents = upstream.get(step.id, [])
            otherwise = {p: approvals[p].else_ or [] for p in parents if p in approvals}
            if any(targets and step.id not in targets for targets in otherwise.values()):
                continue  # skipped by an approval's else branch
            if rule in STOPPED_BY_FAILURE and any(not targets for targets in otherwise.values()):
                continue  # stopped by a rejected approval's failure
            # open: the parent runs and succeeds (an approval without else fails when not approved)
            edges = [parent in reached and (parent not in otherwise or bool(otherwise[parent])) for parent in parents]
            if not edges or (all(edges) if rule in ALL_SUCCEED else any(edges) if rule in ONE_SUCCEEDS else True):
                reached[step.id] = step
                changed = True
    return reached


def _step_print(step: Any) -> str:
    """What a step does: everything but its place in the graph and its wording."""
    body = step.model_dump(mode="json", exclude={"after", "trigger_rule", "title", "description"})
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def ungated(before: Any, after: Any) -> bool:
    """Whether what can run without an approval's yes grows: a step not behind any approval in
    ``after`` that ``before`` did not have, by id and by what it does (approval steps are compared on
    their rules instead). This covers a guarded step moved out, renamed out, copied out or put in an
    ``else``, and a step outside changed to do something else; adding steps behind an approval is no
    such change."""

    def outside(definition: Any) -> set[tuple[str, str]]:
        # approval steps themselves are compared on their rules (review_facts), not on their wording
        return {(i, _step_print(s)) for i, s in not_behind_approval(definition).items() if s.approval is None}

    return bool(outside(after) - outside(before))


def changed(project: Project, rel: str, before: str | None, after: str) -> set[str]:
    """What of :data:`REVIEWABLE` the change of ``rel`` from ``before`` to ``after`` touches."""
    old_definition = project.check_text(rel, before).definition if before is not None else None
    new_definition = project.check_text(rel, after).definition
    found = set()
    if review_facts(old_definition) != review_facts(new_definition) or ungated(old_definition, new_definition):
        found.add("approvals")
    if set(text_code_parts(before, rel)) != set(text_code_parts(after, rel)):
        found.add("scripts")
    return found


# -- the review ------------------------------------------------------------------------------


class Store(Protocol):
    """What a review needs of :class:`~autopilot_provider.server.definition_store.DefinitionStore`."""

    engine: Engine
    refresh: Callable[[], list[str]] | None

    def project(self) -> Project: ...
    def clean_path(self, rel: Any, *, name: str = "path") -> str: ...
    def path_of(self, rel: str) -> Path: ...
    def read_bytes(self, rel: str) -> bytes | None: ...
    def require_valid(self, rel: str, content: str) -> Validation: ...
    def revision(self, rel: str, number: int) -> Revision: ...


class Reviews:
    """The four-eyes review of the changes saved through ``store``."""

    def __init__(self, store: Store):
        self.store = store

    def reasons(self, rel: str, before: str | None, after: str) -> list[str]:
        """What in the change from ``before`` to ``after`` needs a second person's review, among
        ``[autopilot] review_required_for``: ``approvals`` (an approval step added, removed or changed
        in who approves, quorum, exclude_requester, escalation, timeout or ``else``; or what can run
        without an approval's yes grows, see :func:`ungated`) and ``scripts`` (code added, removed or
        changed: a script's code, connections, working directory and environment variable names, as
        :func:`~autopilot_provider.definitions.code.code_parts` tells them). The change is also
        compared with the last recorded content at its path and with the last recorded definition of
        its kind and id (a file deleted, or renamed, and written again), so a workflow deleted with its
        approval cannot come back without it unreviewed. Empty: the change applies at once."""
        wanted = review_required_for()
        if not wanted:
            return []
        project = self.store.project()
        found: set[str] = set()
        for base in [before, *self._recorded(rel, before, after)]:
            found |= changed(project, rel, base, after)
        return [what for what in REVIEWABLE if what in wanted and what in found]

    def _recorded(self, rel: str, before: str | None, after: str) -> list[str]:
        """Recorded contents a change is also compared with, beyond the file now at ``rel``: the last
        applied revision at ``rel`` when the file is gone, and the last applied revision elsewhere of a
        definition with the new content's kind and id, when that is not what ``before`` was."""
        kind, ident = quick_header(after)
        old_kind, old_ident = quick_header(before) if before is not None else (None, None)
        engine = self.store.engine
        _require_tables(engine)
        t = revision_table
        applied = or_(t.c.state.is_(None), t.c.state == APPLIED)
        found: list[str] = []
        with engine.connect() as connection:
            if before is None:
                last = connection.scalar(
                    select(t.c.content).where(t.c.path == rel, applied).order_by(t.c.number.desc()).limit(1)
                )
                if last:
                    found.append(last)
            if ident and (kind, ident) != (old_kind, old_ident):
                rows = connection.execute(
                    select(t.c.content)
                    .where(applied, t.c.content.is_not(None), t.c.content.contains(ident, autoescape=True))
                    .order_by(t.c.created_at.desc(), t.c.number.desc())
                ).scalars()
                for content in rows:
                    if quick_header(content) == (kind, ident):
                        found.append(content)
                        break
        return found

    def propose(
        self,
        rel: str,
        action: str,
        content: str,
        author: str | None,
        base_version: str | None,
        checked: Validation,
        reasons: list[str],
    ) -> SaveResult:
        """Store a change as a revision waiting for review; the file is not touched."""
        engine = self.store.engine
        _require_tables(engine)
        version = content_version(content)
        with engine.begin() as connection:
            number = revisions.next_number(connection, rel)
            revisions.add_revision(
                connection,
                rel,
                number,
                action,
                version=version,
                author=author,
                content=content,
                state=PENDING_REVIEW,
                base_version=base_version,
                review_reasons=",".join(reasons),
            )
        log.info("%s revision %s by %s waits for review (%s)", rel, number, author, ", ".join(reasons))
        return SaveResult(
            rel, action, number, version, checked.kind, checked.id, state=PENDING_REVIEW, review_reasons=reasons
        )

    def decide(self, rel: str, number: int, decision: str, *, reviewer: str, comment: str | None = None) -> SaveResult:
        """Approve (the change is written, if the file is still what it was based on: else 409) or
        reject a revision waiting for review. Its author cannot review it (403)."""
        store = self.store
        rel = store.clean_path(rel)
        if decision not in ("approve", "reject"):
            raise InvalidInput("decision must be 'approve' or 'reject'", field="decision")
        approve = decision == "approve"
        proposed = store.revision(rel, number)
        if proposed.state != PENDING_REVIEW:
            raise Conflict(f"revision {number} of {rel!r} is {proposed.state}, not waiting for review", field="number")
        if not reviewer or reviewer == proposed.author:
            raise Forbidden("you wrote this revision: someone else must review it", field="user")
        content = proposed.content or ""
        reasons = (proposed.review_reasons or "").split(",") if proposed.review_reasons else []
        checked = store.require_valid(rel, content) if approve else Validation(rel, None, None, True)
        path = store.path_of(rel)
        t = revision_table
        with revisions.transaction(store.engine) as connection:
            # the head row's lock serializes this with saves of the same path
            revisions.lock_path(connection, rel)
            previous = store.read_bytes(rel)
            claimed = connection.execute(
                update(t)
                .where(t.c.path == rel, t.c.number == number, t.c.state == PENDING_REVIEW)
                .values(
                    state=APPLIED if approve else REJECTED,
                    reviewer=reviewer,
                    reviewed_at=_now(),
                    review_comment=(comment or "").strip() or None,
                )
            )
            if claimed.rowcount != 1:
                raise Conflict(f"revision {number} of {rel!r} was reviewed meanwhile", field="number")
            if approve:
                if proposed.action == "create":
                    if previous is not None:
                        raise AlreadyExists(
                            f"a definition was created at path {rel!r} since this revision was proposed", field="path"
                        )
                else:
                    revisions.expect_version(rel, proposed.base_version, previous)
                atomic_write(path, content)
            try:
                connection.commit()
            except Exception:
                if approve:
                    revisions.restore(path, previous)
                raise
        log.info("%s revision %s: %s by %s", rel, number, decision, reviewer)
        result = SaveResult(
            rel,
            proposed.action,
            number,
            proposed.version,
            checked.kind,
            checked.id,
            state=APPLIED if approve else REJECTED,
            review_reasons=reasons,
        )
        if approve and store.refresh:
            result.refreshed_bundles = store.refresh()
        return result

    def pending(self) -> list[Revision]:
        """Every revision waiting for review, oldest first (content left out)."""
        return revisions.pending(self.store.engine)
