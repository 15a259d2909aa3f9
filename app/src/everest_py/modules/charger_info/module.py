# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""ChargerInfo: reads the fields from every kvs connection and the chain, merges them in order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from everest_py.errors import CommandError
from everest_py.framework.module import Connection, Module, command
from everest_py.modules.charger_info.info import FIELDS, assemble, first_line


@dataclass(frozen=True)
class ChargerInfoConfig:
    firmware_version_file: str


class ChargerInfo(Module):
    Config = ChargerInfoConfig

    async def _read_store(self, conn: Connection) -> dict[str, Any]:
        results = await asyncio.gather(*(conn.call.load(key=name) for name in FIELDS), return_exceptions=True)
        values: dict[str, Any] = {}
        for name, result in zip(FIELDS, results, strict=True):
            if isinstance(result, CommandError):
                self.log.warning("load %s from %s.%s failed: %s", name, conn.module_id, conn.impl_id, result)
            elif isinstance(result, BaseException):
                raise result
            elif result is not None:
                values[name] = result
        return values

    async def _read_chain(self) -> dict[str, Any] | None:
        if len(self.r.charger_information) == 0:
            return None
        try:
            chained = await self.r.charger_information.call.get_charger_information()
        except CommandError as err:
            self.log.warning("the chained charger_information failed: %s", err)
            return None
        return chained if isinstance(chained, dict) else None

    @command("main")
    async def get_charger_information(self) -> dict[str, str]:
        stores, chained = await asyncio.gather(
            asyncio.gather(*(self._read_store(conn) for conn in self.r.kvs)), self._read_chain()
        )
        for values in stores:
            for name, value in values.items():
                if not isinstance(value, str):
                    self.log.warning("ignored %s: a %s, not a string", name, type(value).__name__)
        return assemble(stores, first_line(self.config.firmware_version_file), chained)
