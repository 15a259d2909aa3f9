# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Fakes for the Auth logic tests: a clock that moves only when told, recording peers, validators."""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from everest_py.modules.auth.evse import Connector
from everest_py.modules.auth.station import AuthHandler
from everest_py.modules.auth.tokens import AuthConfig, Validator

T = TypeVar("T")
START = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


class FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimers:
    """Time stands still until :meth:`advance` moves it and fires the timers that are due."""

    def __init__(self) -> None:
        self.t = START
        self._due: list[tuple[datetime, int, FakeTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self.t

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer()
        heapq.heappush(self._due, (self.t + timedelta(seconds=max(0.0, delay_s)), next(self._seq), timer, callback))
        return timer

    async def advance(self, seconds: float) -> None:
        end = self.t + timedelta(seconds=seconds)
        while self._due and self._due[0][0] <= end:
            when, _, timer, callback = heapq.heappop(self._due)
            self.t = when
            if not timer.cancelled:
                callback()
                await settle()
        self.t = end
        await settle()

    @property
    def pending(self) -> int:
        return sum(1 for _, _, timer, _ in self._due if not timer.cancelled)


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(30):
        await asyncio.sleep(0)


class Peers:
    """Records what the logic asks the outside to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.statuses: list[tuple[str, str]] = []  # (token value, status)
        self.status_messages: list[dict[str, Any]] = []
        self.stored: list[list[dict[str, Any]]] = []

    def authorize(self, evse_index: int, token: dict[str, Any], result: dict[str, Any]) -> None:
        self.calls.append(("authorize", evse_index, token["id_token"]["value"], result["authorization_status"]))
        self.last_authorized = (token, result)

    def withdraw(self, evse_index: int) -> None:
        self.calls.append(("withdraw", evse_index))

    def stop_transaction(self, evse_index: int, request: dict[str, Any]) -> None:
        self.calls.append(("stop", evse_index, request["reason"]))

    def publish_status(self, token: dict[str, Any], status: str, messages: list[Any]) -> None:
        self.statuses.append((token["id_token"]["value"], status))
        self.status_messages.append({"token": token, "status": status, "messages": messages})

    def cancel_on_evse(self, evse_id: int) -> None:
        self.calls.append(("cancel_reservation", evse_id))

    def reserve_on_evse(self, evse_id: int, reservation_id: int) -> None:
        self.calls.append(("reserve", evse_id, reservation_id))

    def publish_update(self, reservation_id: int, status: str) -> None:
        self.calls.append(("update", reservation_id, status))

    def store(self, reservations: list[dict[str, Any]]) -> None:
        self.stored.append(reservations)

    def take(self) -> list[tuple[Any, ...]]:
        calls, self.calls = self.calls, []
        return calls


def verdict(status: str = "Accepted", **extra: Any) -> dict[str, Any]:
    return {"authorization_status": status, "tariff_messages": [], **extra}


class FakeValidator:
    """Answers with a fixed verdict (or one per token value); can be held until released."""

    def __init__(self, default: dict[str, Any] | None = None, **per_token: dict[str, Any]) -> None:
        self.default = default or verdict()
        self.per_token = per_token
        self.asked: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, token: dict[str, Any]) -> dict[str, Any]:
        value = token["id_token"]["value"]
        self.asked.append(value)
        if self.gate is not None:
            await self.gate.wait()
        return dict(self.per_token.get(value, self.default))


def token(value: str, kind: str = "RFID", **extra: Any) -> dict[str, Any]:
    return {"id_token": {"value": value, "type": "ISO14443"}, "authorization_type": kind, **extra}


def event(kind: str, **extra: Any) -> dict[str, Any]:
    return {"uuid": "session", "timestamp": "2025-06-01T08:00:00.000Z", "event": kind, **extra}


def plugged() -> dict[str, Any]:
    return event("SessionStarted", session_started={"reason": "EVConnected", "meter_value": {}})


class Station:
    """An AuthHandler with ``evses`` EVSEs (ids 1.., one connector each), fake time and peers."""

    def __init__(
        self,
        evses: int = 2,
        validators: list[Validator] | None = None,
        connector_types: list[str] | None = None,
        **cfg: Any,
    ) -> None:
        self.timers = FakeTimers()
        self.peers = Peers()
        self.validator = FakeValidator()
        self.auth = AuthHandler(AuthConfig(**cfg), self.timers, self.peers, validators or [self.validator], self.peers)
        types = connector_types or ["Unknown"] * evses
        for i in range(evses):
            self.auth.add_evse(i + 1, i, [Connector(1, types[i])])
        self.tasks: list[asyncio.Task[str]] = []

    async def offer(self, tok: dict[str, Any]) -> asyncio.Task[str]:
        """Offer a token; its handling runs as far as it can without time passing."""
        task = asyncio.ensure_future(self.auth.on_token(tok))
        self.tasks.append(task)
        await settle()
        return task

    async def swipe(self, tok: dict[str, Any]) -> str:
        """Offer a token and return its result (the validators must not be held)."""
        task = await self.offer(tok)
        assert task.done(), "the token is still being handled"
        return task.result()

    def session(self, evse_id: int, kind: str, **extra: Any) -> None:
        ev = plugged() if kind == "plug" else event(kind, **extra)
        self.auth.on_session_event(evse_id, ev)

    def charging(self, evse_id: int) -> None:
        """The EVSE starts its transaction (as an EvseManager reports it)."""
        self.session(evse_id, "TransactionStarted")


def run(test: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async test function on a fresh event loop."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return asyncio.run(test(*args, **kwargs))

    return wrapper
