"""How steps depend on each other — one rule set shared by validation, the factory and the designer.

* A step with ``after:`` waits for exactly those steps.
* A step that a decision branches to waits for that decision (plus any ``after:``); so does a step
  named in an approval's ``else:`` (it runs when the request is not approved).
* Otherwise a step waits for the previous step in the list (the first step waits for nothing).
* Steps downstream of a branching step (a decision, an approval with ``else``) join with ``none_failed_min_one_success`` unless they set a trigger
  rule: a skipped branch then skips what follows it alone, and a join runs after whichever branch ran.
"""

from __future__ import annotations

from autopilot_provider.definitions.models import Step


def branch_targets(step: Step) -> list[str] | None:
    """The steps a branching step chooses among (a decision's branches, an approval's ``else``),
    or None for a step that does not branch."""
    if step.decision is not None:
        return step.decision.targets()
    if step.approval is not None and step.approval.else_:
        return list(step.approval.else_)
    return None


def branch_sources(steps: list[Step]) -> dict[str, list[str]]:
    """step id → the branching steps that branch to it."""
    sources: dict[str, list[str]] = {}
    for step in steps:
        for target in branch_targets(step) or []:
            sources.setdefault(target, []).append(step.id)
    return sources


def dependencies(steps: list[Step]) -> dict[str, list[str]]:
    """step id → the step ids it waits for, in a stable order."""
    sources = branch_sources(steps)
    deps: dict[str, list[str]] = {}
    for i, step in enumerate(steps):
        if step.after is not None:
            upstream = list(step.after)
        elif step.id in sources:
            upstream = []
        else:
            upstream = [steps[i - 1].id] if i else []
        for decision in sources.get(step.id, []):
            if decision not in upstream:
                upstream.append(decision)
        deps[step.id] = upstream
    return deps


def downstream_of_decision(steps: list[Step]) -> set[str]:
    """Ids of steps that run after some branching step (directly or transitively)."""
    deps = dependencies(steps)
    decisions = {s.id for s in steps if branch_targets(s) is not None}
    memo: dict[str, bool] = {}

    def after_decision(step_id: str, trail: frozenset[str] = frozenset()) -> bool:
        if step_id in memo:
            return memo[step_id]
        result = any(
            up in decisions or (up not in trail and after_decision(up, trail | {step_id}))
            for up in deps.get(step_id, [])
        )
        memo[step_id] = result
        return result

    return {s.id for s in steps if after_decision(s.id)}


def stray_decision_children(steps: list[Step]) -> list[tuple[str, str]]:
    """(step, decision) pairs where a step waits directly on a decision that never branches to it —
    the decision would always skip it."""
    deps = dependencies(steps)
    by_id = {s.id: s for s in steps}
    stray = []
    for step in steps:
        for up in deps[step.id]:
            decision = by_id.get(up)
            if decision is not None and decision.decision is not None and step.id not in decision.decision.targets():
                stray.append((step.id, up))
    return stray
