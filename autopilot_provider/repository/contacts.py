"""Who is who: the project's ``Contacts`` definitions, and contact references resolved to recipients.

References (``ContactRef`` in the definition format):

==========================  ===============================================================
``person:ID``               the person ``ID``
``group:ID``                the group: its members, plus its mailing address and Slack channel
``manager_of:requester``    the requester's manager (``manager_of:ID``: that person's manager)
``requester``               who asked: the Airflow user who started the run (``run.requester``,
                            matched to a person by ``username``); when the run was started by
                            no user (a schedule) or by an account listed in ``[autopilot]
                            on_behalf_users`` (a system acting on someone's behalf), the form's
                            ``requester`` field (a person id, username or e-mail address).
                            Anybody else who names someone else there is refused
``user:NAME``               the person whose Airflow ``username`` is NAME (else just that user)
``email:ADDRESS``           a bare e-mail address
``owner``                   the workflow's (a trigger's) ``owner``, when it is one of the fixed
                            references above (``run.owner`` in the scope: the DAG's own, from
                            the compile-time ``ScopeSpec``)
``owner_of:ID``             the ``owner`` of the inventory item ``ID`` (a ``Resources`` item)
``owner_of:form.FIELD``     the ``owner`` of the inventory item the form field ``FIELD`` picked
==========================  ===============================================================

An ``owner`` (of a workflow, an inventory item, an alert, a trigger) is a contact when it is a fixed
reference — ``person:``, ``group:``, ``user:``, ``email:`` or ``manager_of:ID`` (:func:`owner_contact`);
anything else is free text, which stays valid as Airflow's ``owner`` but reaches nobody.

Resolution happens at run time (``Directory.resolve``), here and only here — steps, workflow
notifications, approvals and timers all call it; ``check_contact_refs`` and ``owner_problems`` find
unknown people, groups and items when a definition is validated.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autopilot_provider import config
from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import suggest
from autopilot_provider.repository.protocol import Definitions

REF_KINDS = ("person", "group", "manager_of", "user", "email", "owner_of")
#: The references that name the same contact whatever the run: what an ``owner`` may be.
FIXED_KINDS = ("person", "group", "manager_of", "user", "email")
#: ``owner_of:form.FIELD``: the owner of the inventory item a form field picked.
FORM_PREFIX = "form."
#: Free text that looks like a reference with a misspelt kind (``grop:storage``).
_KIND_LIKE = re.compile(r"^([A-Za-z_]+):(\S+)$")
#: The form field that names who a request is for, when someone files it on their behalf
#: (:meth:`Directory.requester`).
REQUESTER_FIELD = "requester"


class ContactError(ValueError):
    """A contact reference that cannot be resolved."""


class OnBehalfRefused(ContactError):
    """A user named someone else as the requester without being allowed to act on their behalf."""


@dataclass(frozen=True)
class Recipient:
    """A resolved reference. ``slack`` is a member id for a person and a channel for a group."""

    ref: str
    kind: str  # person | group | user | address
    id: str | None = None
    name: str | None = None
    email: str | None = None
    slack: str | None = None
    username: str | None = None
    members: tuple[Recipient, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in ("ref", "kind", "id", "name", "email", "slack", "username")}
        if self.kind == "group":
            data["members"] = [member.as_dict() for member in self.members]
        return data

    def label(self) -> str:
        return self.name or self.id or self.username or self.email or self.ref


def split_ref(ref: str) -> tuple[str, str]:
    """``person:alice`` → (``person``, ``alice``); ``requester`` → (``requester``, ``""``)."""
    if ref in ("requester", "owner"):
        return ref, ""
    kind, sep, value = ref.partition(":")
    if not sep or kind not in REF_KINDS or not value:
        raise ContactError(
            f"invalid contact reference {ref!r}: expected person:ID, group:ID, manager_of:requester, "
            f"user:NAME, email:ADDRESS, requester, owner or owner_of:ID"
        )
    return kind, value


def owner_contact(owner: str | None) -> str | None:
    """The contact reference an ``owner`` field names — ``person:``, ``group:``, ``user:``,
    ``email:`` or ``manager_of:ID``, the same whatever the run —, else None (no owner, or free text,
    which Airflow shows as the DAG's owner and which reaches nobody)."""
    if not owner:
        return None
    kind, sep, value = owner.partition(":")
    if sep and value and kind in FIXED_KINDS and value != "requester":
        return owner
    return None


def _not_a_contact(owner: str | None, of: str = "") -> str:
    """Why an owner (``of`` what, when not the definition's own) reaches nobody."""
    if not owner:
        return f"{of} has no owner" if of else "no owner is set"
    return (
        f"the owner {owner!r}{' of ' + of if of else ''} is free text, not a contact: make it a reference such as "
        "group:ID or person:ID to reach it"
    )


class Directory:
    """Every person and group of the project's ``Contacts`` definitions (the first definition of an
    id wins). ``broken`` lists Contacts files that have errors (their entries are not included)."""

    def __init__(
        self, contacts: Iterable[m.Contacts] = (), broken: Iterable[str] = (), resources: Iterable[m.Resources] = ()
    ):
        self.people: dict[str, m.Person] = {}
        self.groups: dict[str, m.Group] = {}
        for definition in contacts:
            for person in definition.people:
                self.people.setdefault(person.id, person)
            for group in definition.groups:
                self.groups.setdefault(group.id, group)
        self.broken = list(broken)
        #: the inventory's items by id (the first definition of an id wins), for ``owner_of:``
        self.resources: dict[str, m.Resource] = {}
        self.broken_inventories: list[str] = []
        for inventory in resources:
            for item in inventory.items:
                self.resources.setdefault(item.id, item)

    @classmethod
    def from_project(cls, project: Definitions, *, inventory: bool = True) -> Directory:
        """The project's people and groups and (``inventory``) its inventory items. Checks of the
        inventory itself leave it out: they must not load the file they check."""
        good, broken = [], []
        for loaded in project.of_kind("Contacts"):
            if loaded.ok and isinstance(loaded.definition, m.Contacts):
                good.append(loaded.definition)
            else:
                broken.append(loaded.path)
        inventories, broken_inventories = [], []
        for loaded in project.of_kind("Resources") if inventory else []:
            if loaded.ok and isinstance(loaded.definition, m.Resources):
                inventories.append(loaded.definition)
            else:
                broken_inventories.append(loaded.path)
        directory = cls(good, broken, inventories)
        directory.broken_inventories = broken_inventories
        return directory

    def _why_unknown(self) -> str:
        return f" (Contacts with errors, not read: {', '.join(self.broken)})" if self.broken else ""

    def _why_unknown_item(self) -> str:
        broken = self.broken_inventories
        return f" (Resources with errors, not read: {', '.join(broken)})" if broken else ""

    def person(self, person_id: str, ref: str | None = None) -> Recipient:
        person = self.people.get(person_id)
        if person is None:
            raise ContactError(f"unknown person '{person_id}'{suggest(person_id, self.people)}{self._why_unknown()}")
        return self._person(person, ref or f"person:{person_id}")

    def _person(self, person: m.Person, ref: str) -> Recipient:
        return Recipient(
            ref=ref,
            kind="person",
            id=person.id,
            name=person.name,
            email=person.email,
            slack=person.slack,
            username=person.username,
        )

    def group(self, group_id: str, ref: str | None = None) -> Recipient:
        group = self.groups.get(group_id)
        if group is None:
            raise ContactError(f"unknown group '{group_id}'{suggest(group_id, self.groups)}{self._why_unknown()}")
        members = tuple(self.person(member, f"group:{group_id}") for member in group.members if member in self.people)
        return Recipient(
            ref=ref or f"group:{group_id}",
            kind="group",
            id=group.id,
            name=group.name or group.id,
            email=group.email,
            slack=group.slack_channel,
            members=members,
        )

    def by_username(self, username: str) -> m.Person | None:
        return next((p for p in self.people.values() if p.username == username), None)

    def find_person(self, key: str) -> m.Person | None:
        """A person by id, Airflow username or e-mail address (case-insensitive for e-mail)."""
        if key in self.people:
            return self.people[key]
        found = self.by_username(key)
        if found is None and "@" in key:
            found = next((p for p in self.people.values() if (p.email or "").lower() == key.lower()), None)
        return found

    # -- resolution --------------------------------------------------------------------------

    def requester(
        self,
        run_requester: str | None,
        form_requester: Any = None,
        ref: str = "requester",
        *,
        on_behalf: Collection[str] | None = None,
    ) -> Recipient:
        """Who asked: the Airflow user who started the run, or — when no user started it, or an
        account allowed to act on someone's behalf did (``on_behalf``, default ``[autopilot]
        on_behalf_users``) — the form's ``requester`` field (id, username or e-mail). Anybody else who
        names someone else there is refused (:class:`OnBehalfRefused`): nobody files a request in
        another person's name, so nobody steers who is asked, who is excluded from approving, or who
        gets the mails."""
        named = form_requester.strip() if isinstance(form_requester, str) and form_requester.strip() else None
        if run_requester and named:
            allowed = config.on_behalf_users() if on_behalf is None else set(on_behalf)
            if run_requester not in allowed and not self._same_user(run_requester, named):
                raise OnBehalfRefused(
                    f"{run_requester!r} started this run and cannot request it on behalf of {named!r}: only the "
                    "accounts listed in [autopilot] on_behalf_users may (leave the requester field empty)"
                )
        if run_requester and not named:
            person = self.by_username(run_requester)
            if person is not None:
                return self._person(person, ref)
            return Recipient(ref=ref, kind="user", username=run_requester, name=run_requester)
        if named:
            person = self.find_person(named)
            if person is not None:
                return self._person(person, ref)
            if run_requester and named == run_requester:
                return Recipient(ref=ref, kind="user", username=run_requester, name=run_requester)
            if "@" in named:
                return Recipient(ref=ref, kind="address", email=named, name=named)
            raise ContactError(
                f"the form's requester {named!r} is not a person in the contacts (give a person id, "
                f"Airflow username or e-mail address){self._why_unknown()}"
            )
        raise ContactError("this run has no requester: no user started it and the form has no 'requester' field")

    def _same_user(self, username: str, named: str) -> bool:
        """Whether the form's requester field names ``username`` themselves."""
        if named == username:
            return True
        person = self.find_person(named)
        return person is not None and person.username == username

    def resolve(self, ref: str, scope: Mapping[str, Any] | None = None) -> Recipient:
        """One reference → a recipient. ``scope`` (the run's template scope) gives the requester:
        ``scope['run']['requester']`` and ``scope['form']['requester']``."""
        kind, value = split_ref(ref)
        if kind == "person":
            return self.person(value, ref)
        if kind == "group":
            return self.group(value, ref)
        if kind == "email":
            if "@" not in value:
                raise ContactError(f"invalid e-mail address {value!r} in {ref!r}")
            return Recipient(ref=ref, kind="address", email=value, name=value)
        if kind == "user":
            person = self.by_username(value)
            if person is not None:
                return self._person(person, ref)
            return Recipient(ref=ref, kind="user", username=value, name=value)
        if kind == "requester":
            return self.requester(*_requester_inputs(scope), ref=ref)
        if kind == "owner":
            owner = ((scope or {}).get("run") or {}).get("owner")
            contact = owner_contact(owner)
            if contact is None:
                raise ContactError(f"owner: {_not_a_contact(owner)}")
            return replace(self.resolve(contact, scope), ref=ref)
        if kind == "owner_of":
            return replace(self.resolve(self._item_owner(ref, value, scope), scope), ref=ref)
        # manager_of
        if value == "requester":
            subject = self.requester(*_requester_inputs(scope))
            if subject.kind != "person":
                raise ContactError(
                    f"{ref}: the requester ({subject.label()}) is not a person in the contacts, so their "
                    f"manager is unknown{self._why_unknown()}"
                )
        else:
            subject = self.person(value)
        manager = self.people[subject.id or ""].manager
        if not manager:
            raise ContactError(f"{ref}: {subject.label()} ({subject.id}) has no manager in the contacts")
        return self.person(manager, ref)

    def resolve_all(self, refs: Iterable[str], scope: Mapping[str, Any] | None = None) -> list[Recipient]:
        return [self.resolve(ref, scope) for ref in refs]

    def _item_owner(self, ref: str, value: str, scope: Mapping[str, Any] | None) -> str:
        """The contact that owns the inventory item ``owner_of:`` names (by id, or through a form field)."""
        item_id: Any = value
        if value.startswith(FORM_PREFIX):
            name = value[len(FORM_PREFIX) :]
            form = (scope or {}).get("form") or {}
            item_id = form.get(name) if hasattr(form, "get") else None
            if item_id in (None, ""):
                raise ContactError(f"{ref}: the form's '{name}' names no inventory item")
        item = self.resources.get(str(item_id))
        if item is None:
            hint = suggest(str(item_id), self.resources) + self._why_unknown_item()
            raise ContactError(f"{ref}: no inventory item '{item_id}'{hint}")
        contact = owner_contact(item.owner)
        if contact is None:
            raise ContactError(f"{ref}: {_not_a_contact(item.owner, f'inventory item {item.id!r}')}")
        return contact


def _requester_inputs(scope: Mapping[str, Any] | None) -> tuple[str | None, Any]:
    scope = scope or {}
    run = scope.get("run") or {}
    form = scope.get("form") or {}
    return run.get("requester"), form.get("requester") if hasattr(form, "get") else None


# ---------------------------------------------------------------------------------------------
# Delivery addresses
# ---------------------------------------------------------------------------------------------


def email_addresses(recipients: Iterable[Recipient]) -> tuple[list[str], list[str]]:
    """(addresses, who has none). A group with a mailing address gets one mail there; a group
    without one gets a mail per member. Duplicates are dropped, order is kept."""
    return _reach(recipients, "email")


def slack_targets(recipients: Iterable[Recipient]) -> tuple[list[str], list[str]]:
    """(channels or member ids, who has none): a group's channel, else its members' Slack ids."""
    return _reach(recipients, "slack")


def _reach(recipients: Iterable[Recipient], channel: str) -> tuple[list[str], list[str]]:
    """(distinct targets, labels of who has none) for one channel; a group without its own target
    is reached through its members."""
    targets: dict[str, None] = {}
    missing: list[str] = []
    for recipient in recipients:
        target = getattr(recipient, channel)
        if target:
            targets.setdefault(target)
        elif recipient.kind == "group" and recipient.members:
            sub, none = _reach(recipient.members, channel)
            targets.update(dict.fromkeys(sub))
            missing.extend(none)
        else:
            missing.append(recipient.label())
    return list(targets), list(dict.fromkeys(missing))


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


#: ``check_contact_refs``: the owner (or the form) is not known where the references are written (a
#: function's steps: the calling workflow's), so ``owner`` (``owner_of:form.``) is resolved at run time only.
UNKNOWN: Any = object()


def check_contact_refs(
    refs: Iterable[str],
    project: Definitions,
    directory: Directory | None = None,
    *,
    owner: Any = UNKNOWN,
    item_fields: Any = UNKNOWN,
) -> list[tuple[int, str]]:
    """Validation-time check of contact references: (index in ``refs``, message) for each reference
    to an unknown person, group or inventory item (or a person without a manager in
    ``manager_of:ID``, an item without an owner contact in ``owner_of:ID``). ``owner`` is the owner of
    the definition the references are in (``to: [owner]`` needs it to be a contact);
    ``item_fields`` the form fields that pick inventory items (``owner_of:form.FIELD``). Either
    :data:`UNKNOWN`: not checked. ``requester``, ``user:`` and ``email:`` are only known at run time
    and always pass."""

    problems: list[tuple[int, str]] = []
    refs = list(refs)
    for index, ref in enumerate(refs):
        if ref == "owner" and owner is not UNKNOWN and owner_contact(owner) is None:
            problems.append((index, f"'owner': {_not_a_contact(owner)}"))
    if not any(ref.split(":", 1)[0] in ("person", "group", "manager_of", "owner_of") for ref in refs):
        return problems
    directory = directory or Directory.from_project(project)
    extra = directory._why_unknown()
    for index, ref in enumerate(refs):
        try:
            kind, value = split_ref(ref)
        except ContactError as exc:
            problems.append((index, str(exc)))
            continue
        if kind == "owner_of":
            problems.extend((index, message) for message in _owner_of_problems(ref, value, directory, item_fields))
        elif kind == "person" and value not in directory.people:
            problems.append((index, f"unknown person '{value}'{suggest(value, directory.people)}{extra}"))
        elif kind == "group" and value not in directory.groups:
            problems.append((index, f"unknown group '{value}'{suggest(value, directory.groups)}{extra}"))
        elif kind == "manager_of" and value != "requester":
            person = directory.people.get(value)
            if person is None:
                hint = suggest(value, [*directory.people, "requester"])
                problems.append((index, f"manager_of: unknown person '{value}'{hint}{extra}"))
            elif not person.manager:
                problems.append((index, f"manager_of: person '{value}' has no manager in the contacts"))
        elif kind == "email" and "@" not in value:
            problems.append((index, f"invalid e-mail address {value!r}"))
    return problems


def _owner_of_problems(ref: str, value: str, directory: Directory, item_fields: Any) -> Iterator[str]:
    if value.startswith(FORM_PREFIX):
        name = value[len(FORM_PREFIX) :]
        if item_fields is not UNKNOWN and name not in (item_fields or ()):
            hint = suggest(name, item_fields or ())
            yield (
                f"{ref}: '{name}' is not a form field that picks an inventory item (options: {{resources: TYPE}}){hint}"
            )
        return
    item = directory.resources.get(value)
    if item is None:
        yield f"{ref}: unknown inventory item '{value}'{suggest(value, directory.resources)}{directory._why_unknown_item()}"
    elif owner_contact(item.owner) is None:
        yield f"{ref}: {_not_a_contact(item.owner, f'inventory item {value!r}')}"


def owner_problems(owner: str | None, project: Definitions, directory: Directory | None = None) -> list[str]:
    """Validation of an ``owner`` field (a workflow's, an inventory item's, an alert's, a trigger's):
    a contact reference must name someone known; free text is fine (Airflow's owner field), unless
    it looks like a reference with a misspelt kind (``grop:storage``); references that depend on a
    run (``requester``, ``owner``, ``manager_of:requester``, ``owner_of:``) are no owner."""
    if not owner:
        return []
    if owner in ("requester", "owner") or owner == "manager_of:requester" or owner.startswith("owner_of:"):
        return [
            f"{owner!r} depends on the run; an owner is a fixed contact (person:ID, group:ID, user:NAME, "
            "email:ADDRESS) or free text"
        ]
    if owner_contact(owner) is not None:
        return [message for _, message in check_contact_refs([owner], project, directory)]
    looks = _KIND_LIKE.match(owner)
    if looks and looks.group(1) not in REF_KINDS:
        hint = suggest(looks.group(1), FIXED_KINDS)
        if hint:
            return [
                f"unknown reference kind '{looks.group(1)}'{hint}: write a contact reference, or free text "
                "without 'kind:'"
            ]
    return []
