# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""ErrorHistory: global error subscription into :class:`ErrorDatabase`, get_errors out of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from everest_py.framework.module import Module, command
from everest_py.modules.error_history.history import CLEARED_BY_MODULE, ErrorDatabase, record_from_wire


@dataclass(frozen=True)
class ErrorHistoryConfig:
    database_path: str


class ErrorHistory(Module):
    ImplConfigs = {"error_history": ErrorHistoryConfig}

    _db: ErrorDatabase | None = None

    @property
    def db(self) -> ErrorDatabase:
        if self._db is None:
            raise RuntimeError("the error history is not open yet")
        return self._db

    async def init(self) -> None:
        cfg: ErrorHistoryConfig = self.impl_config["error_history"]
        self._db = ErrorDatabase(cfg.database_path)
        if self._db.journal_mode != "wal":
            self.log.warning("%s: SQLite refused WAL mode (journal mode %s)", self._db.path, self._db.journal_mode)
        rebooted = self._db.clear_by_reboot()
        self.log.info("history in %s; %d error(s) of the previous run cleared by reboot", self._db.path, rebooted)
        self.subscribe_global_errors(self._on_raise, self._on_clear)

    def _on_raise(self, error: dict[str, Any]) -> None:
        try:
            record = record_from_wire(error)
        except ValueError as err:
            self.log.warning("not recorded: %s", err)
            return
        if not self.db.add(record):
            self.log.debug("error %s is recorded already", record.uuid)

    def _on_clear(self, error: dict[str, Any]) -> None:
        try:
            record = record_from_wire(error, state=CLEARED_BY_MODULE)
        except ValueError as err:
            self.log.warning("clear not recorded: %s", err)
            return
        self.db.clear(record)

    @command("error_history")
    def get_errors(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return self.db.query(filters)

    async def shutdown(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
