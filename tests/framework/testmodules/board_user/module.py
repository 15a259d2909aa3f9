# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""BoardUser: ``store("call_<cmd>", args)`` calls the board; ``load`` returns what was seen."""

from __future__ import annotations

from typing import Any

from everest_py.errors import CommandError
from everest_py.framework.module import Module, command


class BoardUser(Module):
    async def init(self) -> None:
        self.seen: dict[str, Any] = {"events": [], "errors": []}
        self.r.bsp.subscribe("event", lambda v: self.seen["events"].append(v["event"]))
        self.r.bsp.subscribe_error(
            None,
            lambda e: self.seen["errors"].append(["raised", e["type"], e["message"]]),
            lambda e: self.seen["errors"].append(["cleared", e["type"], e["state"]]),
        )

    @command("main")
    async def store(self, key: str, value: Any) -> None:
        if key.startswith("call_"):
            cmd = key[len("call_") :]
            try:
                self.seen[f"result_{cmd}"] = {"retval": await self.r.bsp[0].call_cmd(cmd, value)}
            except CommandError as err:
                self.seen[f"result_{cmd}"] = {"error": err.error_type, "message": err.message}
        else:
            self.seen[key] = value

    @command("main")
    def load(self, key: str) -> Any:
        return self.seen.get(key)

    @command("main")
    def delete(self, key: str) -> None:
        self.seen.pop(key, None)

    @command("main")
    def exists(self, key: str) -> bool:
        return key in self.seen
