"""`--log-format json`: one JSON object per line on stdout, for log shippers.

twistd starts logging after makeService, from its own `--logger` option; the tap sets
that option to `json_observer` so the whole process (Twisted's own messages included)
logs as JSON lines.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from twisted.logger import FileLogObserver, LogEvent, formatEvent

__all__ = ["event_as_json", "json_observer"]

# Fields of our own events worth keeping as fields (the access line's values).
_FIELDS = ("method", "endpoint", "status", "bytes", "duration_ms", "stream_id", "player")


def event_as_json(event: LogEvent) -> str:
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": event.get("log_time"),
        "level": getattr(level, "name", None),
        "namespace": event.get("log_namespace"),
        "message": formatEvent(event),
    }
    for field in _FIELDS:
        if field in event:
            record[field] = event[field]
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = failure.getErrorMessage()
    return json.dumps(record, default=str) + "\n"


def json_observer(out: IO[str] | None = None) -> FileLogObserver:
    """A twistd `--logger` factory: JSON lines on stdout."""
    return FileLogObserver(out or sys.stdout, event_as_json)
