"""Checks of `approval` and `form` steps: somebody must be able to answer them."""

from __future__ import annotations

from autopilot_provider import config
from autopilot_provider.definitions import models as m
from autopilot_provider.repository.checks.problems import Problem
from autopilot_provider.repository.contacts import ContactError, Directory, owner_contact, split_ref
from autopilot_provider.repository.protocol import Definitions


def answerable_problems(definition: m.Workflow | m.Function, project: Definitions) -> list[Problem]:
    """(location, message) for approval and form steps nobody could answer: answers come from
    logged-in Airflow users, so every entry of `from`/`escalate_to` must lead to at least one
    Airflow user name; and the requester cannot be an approver where `exclude_requester` is set, nor
    may a step set ``exclude_requester: false`` unless ``[autopilot] allow_self_approval`` is on.
    (Unknown people and groups are reported by the contacts check.)"""
    problems: list[Problem] = []
    directory: Directory | None = None
    for i, step in enumerate(definition.steps):
        spec = step.approval or step.form
        if spec is None:
            continue
        where = f"step '{step.id}': "
        lists = [("from", spec.from_)]
        if step.approval is not None:
            lists.append(("escalate_to", step.approval.escalate_to))
            if not step.approval.exclude_requester and not config.allow_self_approval():
                problems.append(
                    (
                        ("steps", i, "approval", "exclude_requester"),
                        f"{where}exclude_requester: false has no effect: a requester never approves their own "
                        "request unless the deployment's admin sets [autopilot] allow_self_approval; remove it",
                    )
                )
        for key, refs in lists:
            for j, ref in enumerate(refs):
                loc = ("steps", i, step.kind, key, j)
                who = where
                if ref == "owner" and isinstance(definition, m.Workflow) and owner_contact(definition.owner):
                    # the contact the owner names (the contacts check reports an owner that is none)
                    ref, who = str(owner_contact(definition.owner)), f"{where}owner "
                try:
                    kind, value = split_ref(ref)
                except ContactError:
                    continue
                if kind == "email":
                    problems.append((loc, f"{who}{ref} cannot answer: an e-mail address is not an Airflow user"))
                elif kind == "requester" and step.approval is not None and step.approval.exclude_requester:
                    problems.append(
                        (loc, f"{who}the requester cannot approve their own request (exclude_requester is set)")
                    )
                elif kind in ("person", "group"):
                    directory = directory or Directory.from_project(project)
                    people = (
                        [directory.people.get(value)]
                        if kind == "person"
                        else [directory.people.get(p) for p in getattr(directory.groups.get(value), "members", [])]
                    )
                    known = [p for p in people if p is not None]
                    if known and not any(p.username for p in known):
                        what = "has no" if kind == "person" else "has no member with an"
                        problems.append(
                            (loc, f"{who}{ref} {what} Airflow `username` in the contacts, so nobody could answer")
                        )
        if step.form is not None:
            for j, name in enumerate(step.form.required):
                if name not in step.form.properties:
                    problems.append(
                        (("steps", i, "form", "required", j), f"{where}required field '{name}' is not in properties")
                    )
    return problems
