# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Auth on the wire: the probe plays two EvseManagers, a token provider and a validator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from everest_py.framework import wire
from everest_py.testing import Probe

from ..helpers import poll

EVSES = ("evse1", "evse2")
GROUP = {"value": "POLICE", "type": "Central"}


def stack_config(store: Path | None = None, **config: Any) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "module": "Auth",
        "config_module": {"connection_timeout": 10, **config},
        "connections": {
            "token_provider": [{"module_id": "probe", "implementation_id": "tokens"}],
            "token_validator": [{"module_id": "probe", "implementation_id": "validator"}],
            "evse_manager": [{"module_id": "probe", "implementation_id": e} for e in EVSES],
        },
    }
    modules: dict[str, Any] = {"auth": auth}
    if store is not None:
        auth["connections"]["kvs"] = [{"module_id": "store", "implementation_id": "main"}]
        modules["store"] = {"module": "PersistentStore", "config_module": {"sqlite_db_file_path": str(store)}}
    modules["probe"] = {
        "module": "ProbeModule",
        "connections": {
            "auth": [{"module_id": "auth", "implementation_id": "main"}],
            "reservation": [{"module_id": "auth", "implementation_id": "reservation"}],
        },
    }
    return {"active_modules": modules}


class Station:
    """The probe's side: EVSEs that record what Auth asks of them, and a validator."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.reserve_answer = True

    def setup(self, probe: Probe) -> None:
        for number, impl in enumerate(EVSES, start=1):
            evse = {"id": number, "connectors": [{"id": 1, "type": "cType2"}]}
            probe.implement(impl, "get_evse", lambda evse=evse: evse)
            probe.implement(impl, "authorize_response", self._recorder(impl, "authorize"))
            probe.implement(impl, "withdraw_authorization", self._recorder(impl, "withdraw"))
            probe.implement(impl, "stop_transaction", self._recorder(impl, "stop", True))
            probe.implement(impl, "reserve", self._recorder(impl, "reserve", None))
            probe.implement(impl, "cancel_reservation", self._recorder(impl, "cancel_reservation"))
        probe.implement("validator", "validate_token", self.validate)

    def _recorder(self, impl: str, name: str, answer: Any = None) -> Callable[..., Any]:
        def record(**args: Any) -> Any:
            self.calls.append((impl, name, args))
            if name == "reserve":
                return self.reserve_answer
            return answer

        return record

    @staticmethod
    def validate(provided_token: dict[str, Any]) -> dict[str, Any]:
        value = provided_token["id_token"]["value"]
        if value.startswith("BAD"):
            return {"authorization_status": "Blocked", "tariff_messages": []}
        result: dict[str, Any] = {"authorization_status": "Accepted", "tariff_messages": []}
        if value.startswith("COP"):
            result["parent_id_token"] = GROUP
        return result

    async def wait_calls(self, count: int) -> list[tuple[str, str, Any]]:
        async def calls() -> list[tuple[str, str, Any]]:
            return self.calls

        return list(await poll(calls, lambda c: len(c) >= count))

    def take(self) -> list[tuple[str, str]]:
        """The calls so far as (EVSE, command), forgetting them."""
        calls, self.calls = self.calls, []
        return [(impl, name) for impl, name, _ in calls]


def token(value: str, **extra: Any) -> dict[str, Any]:
    return {"id_token": {"value": value, "type": "ISO14443"}, "authorization_type": "RFID", **extra}


def session_event(kind: str, **extra: Any) -> dict[str, Any]:
    return {"uuid": "s-1", "timestamp": wire.timestamp(), "event": kind, **extra}


def plug(probe: Probe, impl: str) -> None:
    meter = {"timestamp": wire.timestamp(), "energy_Wh_import": {"total": 0.0}}
    started = {"reason": "EVConnected", "meter_value": meter}
    probe.publish_var(impl, "session_event", session_event("SessionStarted", session_started=started))


def transaction(probe: Probe, impl: str, value: str) -> None:
    meter = {"timestamp": wire.timestamp(), "energy_Wh_import": {"total": 0.0}}
    started = {"id_tag": token(value), "meter_value": meter}
    probe.publish_var(impl, "session_event", session_event("TransactionStarted", transaction_started=started))


async def statuses_until(queue: asyncio.Queue[Any], last: str) -> list[str]:
    seen = []
    while True:
        message = await asyncio.wait_for(queue.get(), 5)
        seen.append(f"{message['token']['id_token']['value']}:{message['status']}")
        if message["status"] == last:
            return seen


def test_find_first_stop_and_master_pass(make_stack, run_probe) -> None:
    stack, prefix = make_stack(stack_config(master_pass_group_id="POLICE"))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    station = Station()

    async def scenario(probe: Probe) -> None:
        statuses = probe.subscribe_var("auth", "token_validation_status")
        plug(probe, "evse2")
        probe.publish_var("tokens", "provided_token", token("A1"))
        assert await statuses_until(statuses, "UsedToStart") == ["A1:Processing", "A1:Accepted", "A1:UsedToStart"]
        [(impl, name, args)] = await station.wait_calls(1)
        assert (impl, name) == ("evse2", "authorize"), "the EVSE where the car waits"
        assert args["provided_token"]["connectors"] == [2]
        assert args["validation_result"]["authorization_status"] == "Accepted"
        station.take()

        transaction(probe, "evse2", "A1")
        probe.publish_var("tokens", "provided_token", token("BAD1", connectors=[1]))
        assert await statuses_until(statuses, "Rejected") == ["BAD1:Processing", "BAD1:Rejected"]
        [(impl, name, args)] = await station.wait_calls(1)
        assert (impl, name, args["validation_result"]["authorization_status"]) == ("evse1", "authorize", "Blocked")
        station.take()

        probe.publish_var("tokens", "provided_token", token("A1"))
        assert await statuses_until(statuses, "UsedToStop") == ["A1:Processing", "A1:UsedToStop"]
        [(impl, name, args)] = await station.wait_calls(1)
        assert (impl, name, args["request"]["reason"]) == ("evse2", "stop", "Local")
        assert args["request"]["id_tag"]["id_token"]["value"] == "A1"
        station.take()

        # both EVSEs charging; the master pass stops both
        probe.publish_var("evse2", "session_event", session_event("TransactionFinished"))
        transaction(probe, "evse1", "C3")
        transaction(probe, "evse2", "D4")
        probe.publish_var("tokens", "provided_token", token("COP7"))
        assert (await statuses_until(statuses, "UsedToStop"))[-1] == "COP7:UsedToStop"
        calls = await station.wait_calls(2)
        assert sorted((impl, name, args["request"]["reason"]) for impl, name, args in calls) == [
            ("evse1", "stop", "MasterPass"),
            ("evse2", "stop", "MasterPass"),
        ]
        station.take()

        # withdraw_authorization: nothing granted, then a granted authorization
        for impl in EVSES:
            probe.publish_var(impl, "session_event", session_event("TransactionFinished"))
            probe.publish_var(impl, "session_event", session_event("SessionFinished"))
        request: dict[str, Any] = {"evse_id": 1}
        assert await probe.call("auth", "withdraw_authorization", {"request": request}) == "AuthorizationNotFound"
        assert await probe.call("auth", "withdraw_authorization", {"request": {"evse_id": 5}}) == "EvseNotFound"
        probe.publish_var("tokens", "provided_token", token("E5"))
        await statuses_until(statuses, "UsedToStart")
        await station.wait_calls(1)
        assert station.take() == [("evse1", "authorize")]
        assert await probe.call("auth", "withdraw_authorization", {"request": request}) == "Accepted"
        assert [(i, n) for i, n, _ in await station.wait_calls(1)] == [("evse1", "withdraw")]

    run_probe(prefix, scenario, station.setup)
    assert stack.stop() == 0


def test_plug_events_and_connection_timeout(make_stack, run_probe) -> None:
    stack, prefix = make_stack(stack_config(selection_algorithm="PlugEvents", connection_timeout=1))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    station = Station()

    async def scenario(probe: Probe) -> None:
        statuses = probe.subscribe_var("auth", "token_validation_status")
        # no car comes: the token times out after connection_timeout
        probe.publish_var("tokens", "provided_token", token("A1"))
        assert await statuses_until(statuses, "TimedOut") == ["A1:Processing", "A1:Accepted", "A1:TimedOut"]
        assert station.calls == []
        # a car comes while the token waits
        probe.publish_var("tokens", "provided_token", token("B2"))
        assert await statuses_until(statuses, "Accepted") == ["B2:Processing", "B2:Accepted"]
        plug(probe, "evse2")
        assert await statuses_until(statuses, "UsedToStart") == ["B2:UsedToStart"]
        [(impl, name, _)] = await station.wait_calls(1)
        assert (impl, name) == ("evse2", "authorize")
        # no transaction follows: the authorization is withdrawn after connection_timeout
        assert await statuses_until(statuses, "TimedOut") == ["B2:TimedOut"]
        assert [(i, n) for i, n, _ in await station.wait_calls(2)] == [("evse2", "authorize"), ("evse2", "withdraw")]

    run_probe(prefix, scenario, station.setup)
    assert stack.stop() == 0


def expiry(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def test_reservations_persist(make_stack, run_probe, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    stack, prefix = make_stack(stack_config(store=db))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    station = Station()

    async def scenario(probe: Probe) -> None:
        updates = probe.subscribe_var("reservation", "reservation_update")
        r1 = {"reservation_id": 1, "id_token": "ALICE", "evse_id": 1, "expiry_time": expiry(3600)}
        assert await probe.call("reservation", "reserve_now", {"request": r1}) == "Accepted"
        assert await asyncio.wait_for(updates.get(), 5) == {"reservation_id": 1, "reservation_status": "Placed"}
        [(impl, name, args)] = await station.wait_calls(1)
        assert (impl, name, args) == ("evse1", "reserve", {"reservation_id": 1})
        station.take()
        check = {"id_token": "ALICE", "evse_id": 1}
        assert await probe.call("reservation", "exists_reservation", {"request": check}) == "ReservedForToken"
        r2 = {"reservation_id": 2, "id_token": "BOB", "evse_id": 1, "expiry_time": expiry(3600)}
        assert await probe.call("reservation", "reserve_now", {"request": r2}) == "Occupied"
        # the EVSE refuses: Rejected, and nothing stays booked
        station.reserve_answer = False
        r3 = {"reservation_id": 3, "id_token": "CAROL", "evse_id": 2, "expiry_time": expiry(3600)}
        assert await probe.call("reservation", "reserve_now", {"request": r3}) == "Rejected"
        station.reserve_answer = True
        assert await probe.call("reservation", "cancel_reservation", {"reservation_id": 3}) is False
        station.take()
        # a short one expires
        r4 = {"reservation_id": 4, "id_token": "DAVE", "evse_id": 2, "expiry_time": expiry(0.5)}
        assert await probe.call("reservation", "reserve_now", {"request": r4}) == "Accepted"
        assert await asyncio.wait_for(updates.get(), 5) == {"reservation_id": 4, "reservation_status": "Placed"}
        assert await asyncio.wait_for(updates.get(), 5) == {"reservation_id": 4, "reservation_status": "Expired"}
        assert [(i, n) for i, n, _ in await station.wait_calls(2)] == [
            ("evse2", "reserve"),
            ("evse2", "cancel_reservation"),
        ]

    run_probe(prefix, scenario, station.setup)
    assert stack.stop() == 0

    again, prefix2 = make_stack(stack_config(store=db), name="config2.yaml")
    again.start(expect="WAITING_FOR_STANDALONE_MODULES")
    station2 = Station()

    async def after_restart(probe: Probe) -> None:
        check = {"id_token": "alice", "evse_id": 1}
        assert await probe.call("reservation", "exists_reservation", {"request": check}) == "ReservedForToken"
        [(impl, name, args)] = await station2.wait_calls(1)
        assert (impl, name, args) == ("evse1", "reserve", {"reservation_id": 1}), "the EVSE is told again"
        assert await probe.call("reservation", "cancel_reservation", {"reservation_id": 1}) is True
        await station2.wait_calls(2)
        assert station2.take() == [("evse1", "reserve"), ("evse1", "cancel_reservation")]

    run_probe(prefix2, after_restart, station2.setup)
    assert again.stop() == 0
