# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Plain helpers for the module tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def poll(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float = 5.0) -> T:
    """``await fetch()`` until ``done(value)``; the last value on timeout (the caller asserts on it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)
