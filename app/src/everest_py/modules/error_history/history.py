# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The error history: wire error objects in, ErrorObjects out, SQLite (WAL, synchronous=FULL) between."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from everest_py.errors import ConfigError

ACTIVE = "Active"
CLEARED_BY_MODULE = "ClearedByModule"
CLEARED_BY_REBOOT = "ClearedByReboot"
STATES = (ACTIVE, CLEARED_BY_MODULE, CLEARED_BY_REBOOT)

# Wire severities (Low|Medium|High, default Low) and /error_history#/Severity share their names.
SEVERITY_RANK = {"Low": 0, "Medium": 1, "High": 2}
SEVERITY_FILTER = {"LOW_GE": 0, "MEDIUM_GE": 1, "HIGH_GE": 2}

NO_DESCRIPTION = "(no description)"
NO_MESSAGE = "(no message)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS errors (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    sub_type TEXT NOT NULL,
    description TEXT NOT NULL,
    message TEXT NOT NULL,
    severity TEXT NOT NULL,
    module_id TEXT NOT NULL,
    implementation_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS errors_active ON errors (state, module_id, implementation_id, type, sub_type);
"""
COLUMNS = (
    "uuid",
    "type",
    "sub_type",
    "description",
    "message",
    "severity",
    "module_id",
    "implementation_id",
    "timestamp",
    "time_us",
    "state",
)


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (no offset counts as UTC); ValueError if unusable."""
    dt = datetime.fromisoformat(text.strip())
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def format_time(dt: datetime) -> str:
    """UTC with milliseconds, as EVerest stamps errors."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch, for range queries."""
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def severity(value: Any) -> str:
    """The wire severity as /error_history#/Severity (unknown values count as Low, the wire default)."""
    text = str(value or "").strip().capitalize()
    return text if text in SEVERITY_RANK else "Low"


@dataclass(frozen=True)
class Record:
    """One error as stored."""

    uuid: str
    type: str
    sub_type: str
    description: str
    message: str
    severity: str
    module_id: str
    implementation_id: str
    timestamp: str
    time_us: int
    state: str = ACTIVE

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in COLUMNS)


def record_from_wire(error: Mapping[str, Any], state: str = ACTIVE, now: datetime | None = None) -> Record:
    """A wire error object (RaiseError/ClearError data) as a Record; ValueError if it names no origin or type."""
    etype = error.get("type")
    origin = error.get("origin")
    if not isinstance(etype, str) or not etype:
        raise ValueError("the error has no type")
    if not isinstance(origin, Mapping):
        raise ValueError(f"error {etype} has no origin")
    module_id, impl_id = origin.get("module_id"), origin.get("implementation_id")
    if not isinstance(module_id, str) or not isinstance(impl_id, str) or not module_id or not impl_id:
        raise ValueError(f"error {etype} has no origin module_id/implementation_id")
    try:
        when = parse_time(str(error.get("timestamp", "")))
    except ValueError:
        when = now or datetime.now(UTC)
    handle = error.get("uuid")
    return Record(
        uuid=handle if isinstance(handle, str) and handle else str(uuid.uuid4()),
        type=etype,
        sub_type=str(error.get("sub_type") or ""),
        description=str(error.get("description") or ""),
        message=str(error.get("message") or ""),
        severity=severity(error.get("severity")),
        module_id=module_id,
        implementation_id=impl_id,
        timestamp=format_time(when),
        time_us=to_us(when),
        state=state,
    )


def _at_least_two(text: str, placeholder: str) -> str:
    """ErrorObject wants description and message of two characters or more."""
    if not text:
        return placeholder
    return text if len(text) >= 2 else f'"{text}"'


def error_object(row: sqlite3.Row) -> dict[str, Any]:
    """A stored row as /error_history#/ErrorObject."""
    return {
        "type": row["type"],
        "sub_type": row["sub_type"],
        "description": _at_least_two(row["description"], NO_DESCRIPTION),
        "message": _at_least_two(row["message"], NO_MESSAGE),
        "severity": row["severity"],
        "origin": {"module_id": row["module_id"], "implementation_id": row["implementation_id"]},
        "timestamp": row["timestamp"],
        "uuid": row["uuid"],
        "state": row["state"],
    }


def _text(filters: Mapping[str, Any], name: str) -> str:
    value = filters.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {value!r}")
    return value


def where_clause(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """SQL condition and parameters for /error_history#/FilterArguments; ValueError on a bad filter."""
    conds: list[str] = []
    params: list[Any] = []
    if "state_filter" in filters:
        state = filters["state_filter"]
        if state not in STATES:
            raise ValueError(f"state_filter must be one of {', '.join(STATES)}, not {state!r}")
        conds.append("state = ?")
        params.append(state)
    if "origin_filter" in filters:
        origin = filters["origin_filter"]
        if not isinstance(origin, Mapping):
            raise ValueError("origin_filter needs module_id and implementation_id")
        conds.append("module_id = ? AND implementation_id = ?")
        params += [_text(origin, "module_id"), _text(origin, "implementation_id")]
    if "type_filter" in filters:
        conds.append("type = ?")
        params.append(_text(filters, "type_filter"))
    if "severity_filter" in filters:
        level = SEVERITY_FILTER.get(filters["severity_filter"])
        if level is None:
            raise ValueError(f"severity_filter must be one of {', '.join(SEVERITY_FILTER)}")
        wanted = [name for name, rank in SEVERITY_RANK.items() if rank >= level]
        conds.append(f"severity IN ({', '.join('?' * len(wanted))})")
        params += wanted
    if "timeperiod_filter" in filters:
        period = filters["timeperiod_filter"]
        if not isinstance(period, Mapping) or "timestamp_from" not in period or "timestamp_to" not in period:
            raise ValueError("timeperiod_filter needs timestamp_from and timestamp_to")
        try:
            start, end = parse_time(period["timestamp_from"]), parse_time(period["timestamp_to"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"timeperiod_filter: {err}") from None
        conds.append("time_us BETWEEN ? AND ?")
        params += [to_us(start), to_us(end)]
    if "handle_filter" in filters:
        conds.append("uuid = ?")
        params.append(_text(filters, "handle_filter"))
    return (" AND ".join(conds) or "1"), params


class ErrorDatabase:
    """The stored history; one connection in autocommit mode, each change durable when it returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError([f"cannot open the error history database {self.path}: {err}"]) from err
        self._db.row_factory = sqlite3.Row
        try:
            self.journal_mode = str(self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=2000")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as err:
            self._db.close()
            raise ConfigError([f"cannot use the error history database {self.path}: {err}"]) from err

    def clear_by_reboot(self) -> int:
        """Errors still active from an earlier run were cleared by the restart; returns how many."""
        cur = self._db.execute("UPDATE errors SET state = ? WHERE state = ?", (CLEARED_BY_REBOOT, ACTIVE))
        return cur.rowcount

    def add(self, record: Record) -> bool:
        """Store a raised error; False if its uuid is known already."""
        cur = self._db.execute(
            f"INSERT OR IGNORE INTO errors ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",  # noqa: S608 - fixed column names
            record.row(),
        )
        return cur.rowcount == 1

    def clear(self, record: Record) -> int:
        """Mark the active error(s) of this origin, type and sub_type ClearedByModule.

        A clear whose error was never recorded (raised before the history started) is stored as a
        cleared error. Returns the number of rows changed or added.
        """
        cur = self._db.execute(
            "UPDATE errors SET state = ? WHERE state = ? AND module_id = ? AND implementation_id = ? "
            "AND type = ? AND sub_type = ?",
            (CLEARED_BY_MODULE, ACTIVE, record.module_id, record.implementation_id, record.type, record.sub_type),
        )
        if cur.rowcount > 0:
            return cur.rowcount
        return 1 if self.add(replace(record, state=CLEARED_BY_MODULE)) else 0

    def query(self, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The errors passing every given filter, oldest first, as ErrorObjects."""
        cond, params = where_clause(filters)
        rows = self._db.execute(f"SELECT * FROM errors WHERE {cond} ORDER BY seq", params).fetchall()  # noqa: S608 - conditions built from fixed text
        return [error_object(r) for r in rows]

    def close(self) -> None:
        self._db.close()
