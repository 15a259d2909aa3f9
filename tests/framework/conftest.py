# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Framework tests see the test-only modules FakeBoard and BoardUser."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
EXTRA = "FakeBoard=testmodules.fake_board.module:FakeBoard,BoardUser=testmodules.board_user.module:BoardUser"


@pytest.fixture(autouse=True)
def test_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("EVEREST_PY_EXTRA_MODULES", EXTRA)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(HERE))
    yield
