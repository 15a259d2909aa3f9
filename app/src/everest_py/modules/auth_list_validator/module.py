# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""AuthListValidator: validate_token answered from an :class:`AuthList`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from everest_py.errors import ConfigError
from everest_py.framework.module import Module, command
from everest_py.modules.auth_list_validator.authlist import AuthList, ListError


@dataclass(frozen=True)
class AuthListConfig:
    list_file: str


class AuthListValidator(Module):
    Config = AuthListConfig

    _list: AuthList | None = None

    @property
    def tokens(self) -> AuthList:
        if self._list is None:
            raise RuntimeError("the token list is not loaded yet")
        return self._list

    async def init(self) -> None:
        try:
            self._list = AuthList(self.config.list_file, self.log)
        except ListError as err:
            raise ConfigError(err.issues) from None
        self.log.info("%s: %d token(s)", self._list.path, len(self._list.entries))

    @command("main")
    def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        value = str(provided_token.get("id_token", {}).get("value", ""))
        result = self.tokens.validate(value)
        self.log.info("token %s: %s", value, result["authorization_status"])
        return result
