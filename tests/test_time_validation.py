"""Waits in time, maintenance windows and asset schedules are checked before anything runs, each
problem as `path:line:col: message`; the window arithmetic the operator uses is checked here too."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import DefinitionError
from autopilot_provider.definitions.moments import Window, cron_problem, next_window, parse_moment
from autopilot_provider.repository.folder import Project
from dag_factory.builder import build_dag
from dag_factory.loader import load_dag_file
from dag_factory.render import render_workflow

# checks no metadata database: run once, in the SQLite pass of make test
pytestmark = pytest.mark.db_independent

HEADER = "apiVersion: autopilot/v1\nkind: Workflow\nid: wf\n"
INVENTORY = """\
    apiVersion: autopilot/v1
    kind: Resources
    id: inventory
    items:
      - id: san01
        type: array
        maintenance_windows:
          - {id: saturday, cron: "0 22 * * 6", duration: 4h, timezone: Europe/Paris}
          - {id: nightly, cron: "0 2 * * *", duration: 1h}
      - {id: db01, type: machine}
    """
CONTACTS = """\
    apiVersion: autopilot/v1
    kind: Contacts
    id: contacts
    people: [{id: dave, name: Dave}]
    groups:
      - {id: storage, members: [dave], maintenance_windows: [{cron: "0 3 * * 0", duration: 2h}]}
    """


def errors(tmp_path: Path, text: str, *, extra: dict[str, str] | None = None, name: str = "wf.yaml") -> list[str]:
    for rel, body in {"inventory.yaml": INVENTORY, "contacts.yaml": CONTACTS, **(extra or {})}.items():
        (tmp_path / rel).write_text(textwrap.dedent(body))
    (tmp_path / name).write_text(textwrap.dedent(text))
    return [str(d) for d in Project(tmp_path, display_root="defs").load(name).diagnostics]


def steps(*lines: str) -> str:
    return HEADER + "steps:\n" + "".join(f"  {line}\n" for line in lines)


# -- waits in time ------------------------------------------------------------------------------------


def test_the_three_time_waits_and_a_rest_wait_are_valid(tmp_path):
    text = steps(
        "- id: at",
        "  wait: {until: '2030-01-31T09:00:00', timezone: Europe/Paris}",
        "- id: templated",
        "  wait: {until: '{{ form.start_at }}'}",
        "- id: pause",
        "  wait: {for: 2h}",
        "- id: inline",
        "  wait: {window: {cron: '0 22 * * 6', duration: 4h, timezone: Europe/Paris}}",
        "- id: on_item",
        "  wait: {window: {resource: san01, id: saturday}}",
        "- id: on_group",
        "  wait: {window: {group: storage}}",
        "- id: of_form",
        "  wait: {window: {resource: '{{ form.array }}'}}",
    )
    text = text.replace(
        "steps:\n", "form:\n  properties:\n    start_at: {type: string}\n    array: {type: string}\nsteps:\n"
    )
    assert errors(tmp_path, text) == []


def test_a_bad_duration_names_the_forms_that_work(tmp_path):
    assert errors(tmp_path, steps("- id: a", "  wait: {for: 2 hours}")) == [
        "defs/wf.yaml:6:17: step 'a': wait.for: invalid duration '2 hours': use forms like 30s, 5m, 2h, 3d or PT2H"
    ]


def test_mixing_rest_and_time_fields_is_one_shape_error(tmp_path):
    assert errors(tmp_path, steps("- id: a", "  wait: {for: 2h, every: 10s}")) == [
        "defs/wf.yaml:6:11: step 'a': a wait is either a REST poll (api, operation, until, every, timeout, ...) or "
        "a wait in time (one of until, for, window); this one mixes every with for"
    ]
    assert errors(tmp_path, steps("- id: a", "  wait: {api: x, operation: y, until: 'true', window: {group: g}}")) == [
        "defs/wf.yaml:6:11: step 'a': a wait is either a REST poll (api, operation, until, every, timeout, ...) or "
        "a wait in time (one of until, for, window); this one mixes api, operation with window"
    ]


def test_a_time_wait_needs_exactly_one_of_until_for_window(tmp_path):
    assert errors(tmp_path, steps("- id: a", "  wait: {until: '2030-01-01', for: 1h}")) == [
        "defs/wf.yaml:6:11: step 'a': a wait in time needs exactly one of until, for, window (got until, for)"
    ]
    assert errors(tmp_path, steps("- id: a", "  wait: {fro: 1h}")) == [
        "defs/wf.yaml:6:12: step 'a': unknown field 'fro' (did you mean 'for'?)"
    ]


def test_until_must_be_a_date_time_or_a_template_that_compiles(tmp_path):
    found = errors(
        tmp_path,
        steps(
            "- id: a",
            "  wait: {until: next tuesday}",
            "- id: b",
            "  wait: {until: '{{ form.when '}",
            "- id: c",
            "  wait: {until: '{{ steps.nope.outputs.at }}'}",
            "- id: d",
            "  wait: {until: 'response.body.done'}",
        ),
    )
    assert found == [
        "defs/wf.yaml:6:19: step 'a': until: 'next tuesday' is not an ISO 8601 date-time such as "
        "2030-01-31T09:00:00 or 2030-01-31T09:00:00+01:00",
        "defs/wf.yaml:8:19: step 'b': invalid template: unexpected end of template, expected 'end of print statement'.",
        "defs/wf.yaml:10:19: step 'c': unknown step 'nope' in template",
        "defs/wf.yaml:12:19: step 'd': until: 'response.body.done' is not an ISO 8601 date-time such as "
        "2030-01-31T09:00:00 or 2030-01-31T09:00:00+01:00; a REST wait (an expression over response) also needs "
        "api and operation",
    ]


def test_bad_timezone_cron_and_window_length(tmp_path):
    found = errors(
        tmp_path,
        steps(
            "- id: a",
            "  wait: {until: '2030-01-01T10:00', timezone: Mars/Olympus}",
            "- id: b",
            "  wait: {window: {cron: '61 * * * *', duration: 0s}}",
        ),
    )
    assert found == [
        "defs/wf.yaml:6:49: step 'a': unknown timezone 'Mars/Olympus' (an IANA name such as 'Europe/Paris' or 'UTC')",
        "defs/wf.yaml:8:27: step 'b': invalid cron expression '61 * * * *': five fields, minute hour day-of-month "
        "month day-of-week, e.g. '0 22 * * 6'",
        "defs/wf.yaml:8:51: step 'b': a window must stay open for some time, not '0s'",
    ]


def test_a_window_is_inline_or_a_reference(tmp_path):
    assert errors(tmp_path, steps("- id: a", "  wait: {window: {resource: san01, cron: '* * * * *'}}")) == [
        "defs/wf.yaml:6:20: step 'a': a window is either inline (cron, duration, timezone) or a reference "
        "(resource or group, and id); this one has cron and resource"
    ]
    assert errors(tmp_path, steps("- id: a", "  wait: {window: {cron: '* * * * *'}}")) == [
        "defs/wf.yaml:6:20: step 'a': an inline window needs cron and duration (missing duration), or reference a "
        "window with resource or group"
    ]


def test_unknown_window_references_suggest_the_nearest(tmp_path):
    found = errors(
        tmp_path,
        steps(
            "- id: a",
            "  wait: {window: {resource: san02}}",
            "- id: b",
            "  wait: {window: {resource: san01, id: saturdy}}",
            "- id: c",
            "  wait: {window: {group: storag}}",
            "- id: d",
            "  wait: {window: {resource: db01}}",
        ),
    )
    assert found == [
        "defs/wf.yaml:6:31: step 'a': window: unknown inventory item 'san02' (did you mean 'san01'?)",
        "defs/wf.yaml:8:42: step 'b': window: inventory item 'san01' has no maintenance window 'saturdy' "
        "(did you mean 'saturday'?)",
        "defs/wf.yaml:10:28: step 'c': window: unknown group 'storag' (did you mean 'storage'?)",
        "defs/wf.yaml:12:31: step 'd': window: inventory item 'db01' has no maintenance_windows",
    ]


def test_maintenance_windows_on_items_and_groups_are_checked(tmp_path):
    inventory = """\
        apiVersion: autopilot/v1
        kind: Resources
        id: inventory
        items:
          - id: san01
            type: array
            maintenance_windows:
              - {id: w, cron: "0 25 * * *", duration: 1h, timezone: Mars/Olympus}
              - {id: w, cron: "0 2 * * *", duration: 1 hour}
        """
    (tmp_path / "inventory.yaml").write_text(textwrap.dedent(inventory))
    assert [str(d) for d in Project(tmp_path, display_root="defs").load("inventory.yaml").diagnostics] == [
        "defs/inventory.yaml:9:46: items[0].maintenance_windows[1].duration: invalid duration '1 hour': use forms "
        "like 30s, 5m, 2h, 3d or PT2H"
    ]
    (tmp_path / "inventory.yaml").write_text(textwrap.dedent(inventory).replace("1 hour", "1h"))
    assert [str(d) for d in Project(tmp_path, display_root="defs").load("inventory.yaml").diagnostics] == [
        "defs/inventory.yaml:8:23: item 'san01': invalid cron expression '0 25 * * *': five fields, minute hour "
        "day-of-month month day-of-week, e.g. '0 22 * * 6'",
        "defs/inventory.yaml:8:61: item 'san01': unknown timezone 'Mars/Olympus' (an IANA name such as "
        "'Europe/Paris' or 'UTC')",
        "defs/inventory.yaml:9:14: item 'san01': duplicate maintenance window id 'w'",
    ]


# -- asset schedules and outlets ----------------------------------------------------------------------


def test_asset_schedules_and_outlets_are_valid(tmp_path):
    text = (
        HEADER + "schedule: {assets: {all: [s3://bucket/key, {any: ['autopilot://alerts/disk_full', {uri: 'x://y', "
        "name: orders}]}]}}\n"
        + "steps:\n  - id: a\n    script: {bash: echo}\n    outlets: [s3://bucket/out, {name: report}]\n"
    )
    assert errors(tmp_path, text) == []


def test_bad_asset_uris_are_refused_as_airflow_refuses_them(tmp_path):
    text = (
        HEADER
        + "schedule: {assets: [s3://bucket/key, {any: ['airflow://x', 's3://user:secret@b/k', '  ']}]}\n"
        + "steps:\n  - id: a\n    script: {bash: echo}\n    outlets: ['', {any: [s3://x/y]}]\n"
    )
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:4:45: schedule: invalid asset URI 'airflow://x': the scheme 'airflow' is reserved",
        "defs/wf.yaml:4:60: schedule: an asset URI must not contain a password (credentials belong in Airflow "
        "connections)",
        "defs/wf.yaml:4:84: schedule: an asset URI cannot be empty or blank",
        "defs/wf.yaml:8:15: step 'a': an asset URI cannot be empty or blank",
        "defs/wf.yaml:8:25: step 'a': an outlet is one asset (a URI or {uri, name}), not a condition (any)",
    ]


def test_asset_schedules_need_defaults_and_no_once(tmp_path):
    text = (
        HEADER
        + "schedule: {cron: '@once', assets: [s3://b/k]}\n"
        + "form:\n  properties:\n    host: {type: string}\n  required: [host]\n"
        + "steps:\n  - id: a\n    script: {bash: echo}\n"
    )
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:4:18: schedule: @once cannot be combined with assets (use a cron, or assets alone)"
    ]
    text = text.replace("cron: '@once', ", "")
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:7:11: field 'host' is required but has no default: a scheduled run has nobody to fill it in"
    ]


def test_a_uri_the_providers_normaliser_refuses_is_located(tmp_path):
    """postgres:// assets need a database, schema and table: Airflow's postgres provider says so
    when the DAG is built, and the loader reports it at the URI."""
    text = HEADER + "steps:\n  - id: a\n    script: {bash: echo}\n    outlets: ['postgres://db.example.com/sales']\n"
    (tmp_path / "wf.yaml").write_text(text)
    with pytest.raises(DefinitionError) as caught:
        load_dag_file(str(tmp_path), "wf.yaml")
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.column) == (7, 15)
    assert "postgres:// must contain database, schema, and table names" in diagnostic.message


def test_assets_compile_to_airflow_conditions_and_render(tmp_path):
    from airflow.sdk import Asset, AssetAll, AssetAny, AssetOrTimeSchedule

    text = (
        HEADER
        + "schedule: {cron: '0 6 * * *', timezone: Europe/Paris, assets: {any: [s3://b/k, {all: [x://a, x://b]}]}}\n"
        + "steps:\n  - id: w\n    wait: {until: '2030-01-01T09:00'}\n    outlets: [{uri: 's3://b/out', name: out}]\n"
    )
    (tmp_path / "wf.yaml").write_text(text)
    project = Project(tmp_path)
    dag = build_dag(m.Workflow.model_validate(yaml.safe_load(text)), project)
    schedule = dag.timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert schedule.timetable.expression == "0 6 * * *" and str(schedule.timetable.timezone) == "Europe/Paris"
    condition = schedule.asset_condition
    assert isinstance(condition, AssetAny)
    assert condition.objects[0] == Asset("s3://b/k")
    assert condition.objects[1] == AssetAll(Asset("x://a"), Asset("x://b"))
    [task] = dag.tasks
    assert task.outlets == [Asset(name="out", uri="s3://b/out")]
    assert task.timezone == "Europe/Paris"  # a naive until is read in the schedule's zone
    source = render_workflow(project, "wf")
    assert "AssetOrTimeSchedule(" in source and "Asset(name='out', uri='s3://b/out')" in source.replace('"', "'")


# -- the arithmetic of windows and moments ------------------------------------------------------------


def test_naive_moments_are_read_in_the_zone_and_aware_ones_kept():
    assert parse_moment("2030-01-31T09:00:00", "Europe/Paris") == datetime(2030, 1, 31, 8, 0, tzinfo=UTC)
    assert parse_moment("2030-01-31T09:00:00+00:00", "Europe/Paris") == datetime(2030, 1, 31, 9, 0, tzinfo=UTC)
    assert parse_moment("2030-01-31") == datetime(2030, 1, 31, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an ISO 8601 date-time"):
        parse_moment("tomorrow")


def test_a_window_is_open_or_the_next_one_is_found():
    saturday = Window.of("0 22 * * 6", "4h", "Europe/Paris")
    inside = datetime(2030, 2, 2, 22, 30, tzinfo=UTC)  # Saturday 23:30 in Paris
    start, end, _ = next_window([saturday], inside)
    assert (start, end) == (datetime(2030, 2, 2, 21, 0, tzinfo=UTC), datetime(2030, 2, 3, 1, 0, tzinfo=UTC))
    after = datetime(2030, 2, 3, 1, 0, tzinfo=UTC)  # the moment it closes: outside, next Saturday's
    start, end, _ = next_window([saturday], after)
    assert start == datetime(2030, 2, 9, 21, 0, tzinfo=UTC) and end - start == timedelta(hours=4)
    nightly = Window.of("0 2 * * *", "1h")
    start, _, window = next_window([saturday, nightly], after)
    assert window is nightly and start == datetime(2030, 2, 3, 2, 0, tzinfo=UTC)
    assert next_window([Window.of("0 0 30 2 *", "1h")], after) is None  # February 30th never comes
    assert cron_problem("0 0 30 2 *") == "cron expression '0 0 30 2 *' never fires"
