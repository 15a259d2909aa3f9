# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The token list of AuthListValidator: parsing, checking and reloading, and the validation results."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")
# /authorization#/IdTokenType
ID_TOKEN_TYPES = ("Central", "eMAID", "MacAddress", "ISO14443", "ISO15693", "KeyCode", "Local", "NoAuthorization")
PARENT_TYPE = "Central"
MAX_TOKEN_LENGTH = 36  # /authorization#/IdToken value
KEYS = ("token", "status", "parent_id_token", "expiry_time", "evse_ids")

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Log(Protocol):
    """The part of a logger the list uses."""

    def warning(self, msg: str, *args: Any) -> None: ...

    def info(self, msg: str, *args: Any) -> None: ...


class ListError(ValueError):
    """The list file is unusable; ``issues`` holds one line per problem."""

    def __init__(self, issues: list[str]) -> None:
        self.issues = issues
        super().__init__("; ".join(issues))


def normalize(token: str) -> str:
    """Token values compare case-insensitively (/authorization#/IdToken)."""
    return token.casefold()


def format_time(dt: datetime) -> str:
    """RFC 3339 in UTC."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def invalid() -> dict[str, Any]:
    """The result for a token that is not in the list."""
    return {"authorization_status": "Invalid", "tariff_messages": []}


@dataclass(frozen=True)
class Entry:
    """One token of the list."""

    token: str
    status: str = "Accepted"
    parent_id_token: Mapping[str, str] | None = None
    expiry_time: datetime | None = None
    evse_ids: tuple[int, ...] | None = None

    def result(self, now: datetime) -> dict[str, Any]:
        """/authorization#/ValidationResult at ``now``: an Accepted entry past its expiry time is Expired."""
        status = self.status
        if status == "Accepted" and self.expiry_time is not None and now >= self.expiry_time:
            status = "Expired"
        out: dict[str, Any] = {"authorization_status": status, "tariff_messages": []}
        if self.expiry_time is not None:
            out["expiry_time"] = format_time(self.expiry_time)
        if self.parent_id_token is not None:
            out["parent_id_token"] = dict(self.parent_id_token)
        if self.evse_ids is not None:
            out["evse_ids"] = list(self.evse_ids)
        return out


def _token_value(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string (quote it in YAML), not {value!r}")
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > MAX_TOKEN_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_TOKEN_LENGTH} characters")
    return value


def _parent(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        unknown = sorted(set(map(str, value)) - {"value", "type"})
        if unknown:
            raise ValueError(f"parent_id_token has unknown key(s) {', '.join(unknown)}")
        kind = value.get("type", PARENT_TYPE)
        if kind not in ID_TOKEN_TYPES:
            raise ValueError(f"parent_id_token type must be one of {', '.join(ID_TOKEN_TYPES)}, not {kind!r}")
        return {"value": _token_value(value.get("value"), "parent_id_token value"), "type": kind}
    return {"value": _token_value(value, "parent_id_token"), "type": PARENT_TYPE}


def _expiry(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        raise ValueError(f"expiry_time {value} needs a time and a UTC offset (RFC 3339)")
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expiry_time {value!r} is not an RFC 3339 date-time") from None
    else:
        raise ValueError(f"expiry_time must be an RFC 3339 date-time, not {value!r}")
    if dt.tzinfo is None:
        raise ValueError(f"expiry_time {value} has no UTC offset (add Z or +hh:mm)")
    return dt


def _evse_ids(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("evse_ids must be a non-empty list of EVSE ids (leave it out for every EVSE)")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"evse_ids must hold integers of 1 or more, not {v!r}")
    return tuple(value)


def parse_entry(raw: Any) -> Entry:
    """One list entry; ValueError naming the problem."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"an entry must be a mapping with at least 'token', not {raw!r}")
    unknown = sorted(set(map(str, raw)) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    if "token" not in raw:
        raise ValueError("'token' is missing")
    token = _token_value(raw["token"], "token")
    status = raw.get("status", "Accepted")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    parent = raw.get("parent_id_token")
    expiry = raw.get("expiry_time")
    evse_ids = raw.get("evse_ids")
    return Entry(
        token=token,
        status=status,
        parent_id_token=None if parent is None else _parent(parent),
        expiry_time=None if expiry is None else _expiry(expiry),
        evse_ids=None if evse_ids is None else _evse_ids(evse_ids),
    )


def parse_list(data: Any) -> dict[str, Entry]:
    """Entries by normalized token; ListError with one ``entries[i]: problem`` line per bad entry."""
    if data is None:
        return {}
    if not isinstance(data, list):
        raise ListError([f"the top level must be a list of token entries, not a {type(data).__name__}"])
    entries: dict[str, Entry] = {}
    first: dict[str, int] = {}
    issues: list[str] = []
    for i, raw in enumerate(data):
        try:
            entry = parse_entry(raw)
        except ValueError as err:
            issues.append(f"entries[{i}]: {err}")
            continue
        key = normalize(entry.token)
        if key in first:
            issues.append(f"entries[{i}]: token {entry.token!r} is listed already in entries[{first[key]}]")
            continue
        first[key] = i
        entries[key] = entry
    if issues:
        raise ListError(issues)
    return entries


def load_list(path: Path) -> dict[str, Entry]:
    """The entries of the list file ``path``; ListError with lines naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ListError([f"{path}: the token list file does not exist"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ListError([f"{path}: cannot read the token list file: {err}"]) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        raise ListError([f"{path}: not valid YAML: {' '.join(str(err).split())}"]) from None
    try:
        return parse_list(data)
    except ListError as err:
        raise ListError([f"{path}: {issue}" for issue in err.issues]) from None


Signature = tuple[int, int, int]


def signature(st: os.stat_result) -> Signature:
    """What tells a changed file: modification time, size and inode (an atomic replace)."""
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class AuthList:
    """The list of ``path``: loaded strictly once, then reloaded on change, keeping the last good list."""

    def __init__(self, path: str | Path, log: Log) -> None:
        self.path = Path(path).expanduser().absolute()
        self.log = log
        st = self._stat_or_none()
        self.entries = load_list(self.path)  # ListError: the caller decides how to fail
        self._loaded: Signature | None = signature(st) if st is not None else None
        self._reported: Signature | str | None = None  # the broken version we warned about last

    def _stat_or_none(self) -> os.stat_result | None:
        try:
            return self.path.stat()
        except OSError:
            return None

    def refresh(self) -> None:
        """Reload the list if the file changed; a broken version keeps the previous list (warned once)."""
        try:
            sig = signature(self.path.stat())
        except OSError as err:
            self._keep(str(err.strerror or err), [f"{self.path}: {err.strerror or err}"])
            return
        if sig in (self._loaded, self._reported):
            return
        try:
            entries = load_list(self.path)
        except ListError as err:
            self._keep(sig, err.issues)
            return
        self.entries = entries
        self._loaded = sig
        self._reported = None
        self.log.info("%s: reloaded, %d token(s)", self.path, len(entries))

    def _keep(self, version: Signature | str, issues: list[str]) -> None:
        if self._reported != version:
            self._reported = version
            self.log.warning("keeping the previous token list (%d token(s)): %s", len(self.entries), "; ".join(issues))

    def validate(self, token: str, now: datetime | None = None) -> dict[str, Any]:
        """/authorization#/ValidationResult for ``token`` (after looking for a change of the file)."""
        self.refresh()
        entry = self.entries.get(normalize(token))
        return invalid() if entry is None else entry.result(now or datetime.now(UTC))
