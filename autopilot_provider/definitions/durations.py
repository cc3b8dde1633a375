"""Durations as written in definitions: `30s`, `5m`, `2h`, `1d12h`, `1w`, or ISO-8601 `PT2H`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*")


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raise ValueError naming the text when it is not one."""
    value = str(text).strip()
    if value.startswith("P"):
        import pendulum

        try:
            parsed = pendulum.parse(value)
        except Exception:
            parsed = None
        if not isinstance(parsed, pendulum.Duration):
            raise ValueError(f"invalid duration {text!r}: use forms like 30s, 5m, 2h, 3d or PT2H")
        if parsed.years or parsed.months:
            raise ValueError(f"invalid duration {text!r}: years and months have no fixed length; use days")
        return timedelta(seconds=parsed.total_seconds())
    pos, seconds = 0, 0.0
    while pos < len(value):
        match = _PART.match(value, pos)
        if not match:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(f"invalid duration {text!r}: use forms like 30s, 5m, 2h, 3d or PT2H")
    return timedelta(seconds=seconds)
