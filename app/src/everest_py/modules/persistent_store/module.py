# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""PersistentStore: the kvs interface on top of :class:`SqliteKvs`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from everest_py.framework.module import Module, command
from everest_py.modules.persistent_store.store import SqliteKvs


@dataclass(frozen=True)
class PersistentStoreConfig:
    sqlite_db_file_path: str


class PersistentStore(Module):
    Config = PersistentStoreConfig

    _kvs: SqliteKvs | None = None

    async def init(self) -> None:
        self._kvs = SqliteKvs(self.config.sqlite_db_file_path)
        if self._kvs.journal_mode != "wal":
            self.log.warning("%s: SQLite refused WAL mode (journal mode %s)", self._kvs.path, self._kvs.journal_mode)
        self.log.info("values in %s", self._kvs.path)

    @property
    def kvs(self) -> SqliteKvs:
        if self._kvs is None:
            raise RuntimeError("the store is not open yet")
        return self._kvs

    @command("main")
    def store(self, key: str, value: Any) -> None:
        self.kvs.store(key, value)

    @command("main")
    def load(self, key: str) -> Any:
        return self.kvs.load(key)

    @command("main")
    def delete(self, key: str) -> None:
        self.kvs.delete(key)

    @command("main")
    def exists(self, key: str) -> bool:
        return self.kvs.exists(key)

    async def shutdown(self) -> None:
        if self._kvs is not None:
            self._kvs.close()
            self._kvs = None
