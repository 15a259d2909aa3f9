# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A durable key-value table in SQLite (WAL, synchronous=FULL) holding JSON values."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from everest_py.errors import ConfigError

Json = Any

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode

SCHEMA = "CREATE TABLE IF NOT EXISTS kvs_json (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID"


def resolve(path: str) -> Path:
    """``path`` made absolute against the current directory (``~`` expanded)."""
    return Path(path).expanduser().absolute()


class SqliteKvs:
    """One SQLite connection in autocommit mode: each store or delete is its own durable transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = resolve(str(path))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError([f"cannot open the database {self.path}: {err}"]) from err
        try:
            self.journal_mode = str(self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=2000")
            self._db.execute(SCHEMA)
        except sqlite3.Error as err:
            self._db.close()
            raise ConfigError([f"cannot use the database {self.path}: {err}"]) from err

    def store(self, key: str, value: Json) -> None:
        text = _encode(value)
        self._db.execute(
            "INSERT INTO kvs_json (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, text),
        )

    def load(self, key: str) -> Json:
        """The value stored under ``key``; None if there is none."""
        row = self._db.execute("SELECT value FROM kvs_json WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def delete(self, key: str) -> None:
        self._db.execute("DELETE FROM kvs_json WHERE key = ?", (key,))

    def exists(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM kvs_json WHERE key = ?", (key,)).fetchone() is not None

    def close(self) -> None:
        self._db.close()
