# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""YamlStore: the kvs interface over a YAML file, read-only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from everest_py.framework.module import Module, command
from everest_py.modules.yaml_store.store import load_store


@dataclass(frozen=True)
class YamlStoreConfig:
    file: str


class ReadOnlyStore(Exception):
    """store or delete on a read-only store."""


class YamlStore(Module):
    Config = YamlStoreConfig

    _values: Mapping[str, Any] = MappingProxyType({})

    async def init(self) -> None:
        self._values = load_store(self.config.file)
        self.log.info("%d keys from %s", len(self._values), self.config.file)

    @command("main")
    def store(self, key: str, value: Any) -> None:
        raise ReadOnlyStore(f"the YAML store {self.config.file} is read-only; cannot store key '{key}'")

    @command("main")
    def load(self, key: str) -> Any:
        return self._values.get(key)

    @command("main")
    def delete(self, key: str) -> None:
        raise ReadOnlyStore(f"the YAML store {self.config.file} is read-only; cannot delete key '{key}'")

    @command("main")
    def exists(self, key: str) -> bool:
        return key in self._values
