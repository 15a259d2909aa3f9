# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""LocalAllowlistTokenValidator: validate_token answered from an :class:`Allowlist`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from everest_py.framework.module import Module, command
from everest_py.modules.local_allowlist_token_validator.allowlist import Allowlist


@dataclass(frozen=True)
class LocalAllowlistConfig:
    allowlist_file: str


class LocalAllowlistTokenValidator(Module):
    Config = LocalAllowlistConfig

    _allowlist: Allowlist | None = None

    @property
    def allowlist(self) -> Allowlist:
        if self._allowlist is None:
            self._allowlist = Allowlist(self.config.allowlist_file, self.log)
        return self._allowlist

    async def init(self) -> None:
        self.allowlist.refresh()

    @command("token_validator")
    def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        value = str(provided_token.get("id_token", {}).get("value", ""))
        status = "Accepted" if self.allowlist.contains(value) else "Invalid"
        self.log.info("token %s: %s", value, status)
        return {"authorization_status": status, "tariff_messages": []}
