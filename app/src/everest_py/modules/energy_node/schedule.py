# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Time stamps and time series of the energy types (/energy), shared by EnergyNode and EnergyManager."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

E = TypeVar("E", bound=Mapping[str, Any])

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> datetime:
    """An RFC 3339 time stamp as an aware datetime (no offset counts as UTC); ValueError if unusable."""
    dt = datetime.fromisoformat(text.strip())
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def format_time(dt: datetime) -> str:
    """UTC with milliseconds and a Z, as EVerest writes time stamps."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def floor_to(dt: datetime, step: timedelta) -> datetime:
    """``dt`` rounded down to a whole multiple of ``step`` since the epoch."""
    return dt - (dt - EPOCH) % step


def entry_time(entry: Any, fallback: datetime) -> datetime:
    """The time stamp of a schedule entry; ``fallback`` when it is missing or unreadable."""
    try:
        return parse_time(entry["timestamp"])
    except (KeyError, TypeError, ValueError):
        return fallback


def active_index(times: Sequence[datetime], at: datetime) -> int:
    """Index of the entry of a time series that applies at ``at``.

    The entries are taken in their given order: an entry applies from its time stamp until the next
    one starts, the first entry also applies before its own time stamp and the last one stays valid
    after the series ends. -1 for an empty series.
    """
    if not times:
        return -1
    for i in range(len(times) - 1):
        if times[i] <= at < times[i + 1] or (i == 0 and at < times[0]):
            return i
    return len(times) - 1


def active_entry(series: Sequence[E], at: datetime) -> E | None:
    """The entry of ``series`` that applies at ``at`` (see :func:`active_index`); None if it is empty."""
    i = active_index([entry_time(e, at) for e in series], at)
    return series[i] if i >= 0 else None
