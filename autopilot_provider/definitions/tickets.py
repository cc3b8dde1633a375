"""What Autopilot knows about ServiceNow tables: the fields that close a record of each table, per
resolution. Validation (a `close` of a table not listed needs its own `state`) and the ServiceNow hook
(which sets them) read the same table."""

from __future__ import annotations

#: The closing fields per table and resolution (ServiceNow's out-of-the-box choice values).
#: ``sc_request``: state 3 Closed Complete / 4 Closed Incomplete, plus ``request_state``;
#: ``sc_req_item``, ``sc_task``: 3 Closed Complete / 4 Closed Incomplete; ``incident``: 6 Resolved /
#: 8 Canceled; ``change_request``: 3 Closed / 4 Canceled. Other tables need ``fields`` saying how.
CLOSE_FIELDS: dict[str, dict[str, dict[str, str]]] = {
    "sc_request": {
        "completed": {"state": "3", "request_state": "closed_complete"},
        "rejected": {"state": "4", "request_state": "closed_rejected"},
        "cancelled": {"state": "4", "request_state": "closed_cancelled"},
    },
    "sc_req_item": {"completed": {"state": "3"}, "rejected": {"state": "4"}, "cancelled": {"state": "4"}},
    "sc_task": {"completed": {"state": "3"}, "rejected": {"state": "4"}, "cancelled": {"state": "4"}},
    "incident": {"completed": {"state": "6"}, "rejected": {"state": "8"}, "cancelled": {"state": "8"}},
    "change_request": {"completed": {"state": "3"}, "rejected": {"state": "4"}, "cancelled": {"state": "4"}},
}
