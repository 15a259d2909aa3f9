# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Shared fixtures: one real mosquitto per test session, config writers, probes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from everest_py.testing import Broker, Stack, write_config

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.stop()


@pytest.fixture
def make_stack(tmp_path: Path, broker: Broker) -> Iterator[Callable[..., tuple[Stack, str]]]:
    """make_stack(config_dict, *run_args) -> (Stack, prefix); every stack is stopped after the test."""
    stacks: list[Stack] = []

    def make(config: dict[str, Any], *args: str, name: str = "config.yaml", **kw: Any) -> tuple[Stack, str]:
        path = tmp_path / name
        prefix = write_config(path, config, broker, **kw)
        stack = Stack(path, *args)
        stacks.append(stack)
        return stack, prefix

    yield make
    for s in stacks:
        if s.proc is not None and s.proc.poll() is None:
            s.stop()
