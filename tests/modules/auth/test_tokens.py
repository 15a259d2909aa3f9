# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Auth logic: selection algorithms, validation, stopping, master pass, timeouts and withdrawal."""

from __future__ import annotations

import asyncio

import pytest

from everest_py.modules.auth.evse import Connector, ConnectorEvent, ConnectorState, Evse
from everest_py.modules.auth.tokens import (
    ALREADY_IN_PROCESS,
    NO_CONNECTOR,
    REJECTED,
    TIMEOUT,
    USED_TO_START,
    USED_TO_STOP,
    WITHDRAWN,
    most_telling,
    withdraw_matches,
)

from .fakes import FakeValidator, Station, event, run, settle, token, verdict

# -- the connector state machine and the EVSE -------------------------------------------------------------


def test_connector_states() -> None:
    c = Connector(1)
    assert not c.submit(ConnectorEvent.ENABLE), "enable on an available connector changes nothing"
    for change, state in [
        (ConnectorEvent.FAULTED, ConnectorState.FAULTED),
        (ConnectorEvent.DISABLE, ConnectorState.UNAVAILABLE_FAULTED),
        (ConnectorEvent.ERROR_CLEARED, ConnectorState.UNAVAILABLE),
        (ConnectorEvent.ENABLE, ConnectorState.AVAILABLE),
        (ConnectorEvent.TRANSACTION_STARTED, ConnectorState.OCCUPIED),
        (ConnectorEvent.FAULTED, ConnectorState.FAULTED_OCCUPIED),
        (ConnectorEvent.SESSION_FINISHED, ConnectorState.FAULTED),
        (ConnectorEvent.ERROR_CLEARED, ConnectorState.AVAILABLE),
    ]:
        assert c.submit(change)
        assert c.state is state


def test_evse_availability() -> None:
    evse = Evse(1, 0, [Connector(1), Connector(2)])
    assert evse.available and not evse.unavailable
    evse.connectors[0].submit(ConnectorEvent.DISABLE)
    assert evse.available, "one usable connector is enough"
    evse.connectors[1].submit(ConnectorEvent.FAULTED)
    assert not evse.available and not evse.unavailable
    evse.connectors[1].submit(ConnectorEvent.DISABLE)
    assert evse.unavailable
    busy = Evse(2, 1, [Connector(1), Connector(2)])
    busy.connectors[0].submit(ConnectorEvent.TRANSACTION_STARTED)
    assert not busy.available, "one occupied connector blocks the whole EVSE"


# -- FindFirst ------------------------------------------------------------------------------------------


@run
async def test_single_evse_with_a_car_is_authorized() -> None:
    s = Station(evses=1, connection_timeout_s=30)
    s.session(1, "plug")
    assert await s.swipe(token("A1")) == USED_TO_START
    assert s.peers.take() == [("authorize", 0, "A1", "Accepted")]
    sent, _ = s.peers.last_authorized
    assert sent["connectors"] == [1]
    assert s.peers.statuses == [("A1", "Processing"), ("A1", "Accepted"), ("A1", "UsedToStart")]
    s.charging(1)
    await s.timers.advance(60)
    assert s.peers.take() == [], "the transaction stopped the authorization timer"


@run
async def test_find_first_takes_the_first_free_evse_and_times_out_without_a_transaction() -> None:
    s = Station(connection_timeout_s=30)
    assert await s.swipe(token("A1")) == USED_TO_START
    assert s.peers.take() == [("authorize", 0, "A1", "Accepted")]
    await s.timers.advance(29)
    assert s.peers.take() == []
    await s.timers.advance(2)
    assert s.peers.take() == [("withdraw", 0)]
    assert s.peers.statuses[-1] == ("A1", "TimedOut")
    assert s.auth.evses[1].identifier is None
    assert await s.swipe(token("A1")) == USED_TO_START, "the token may be used again"


@run
async def test_find_first_prefers_the_evse_where_a_car_waits() -> None:
    s = Station(evses=3)
    s.session(3, "plug")
    s.session(2, "plug")
    assert await s.swipe(token("A1")) == USED_TO_START
    assert s.peers.take() == [("authorize", 2, "A1", "Accepted")], "the car that came first"
    assert await s.swipe(token("B2")) == USED_TO_START
    assert s.peers.take() == [("authorize", 1, "B2", "Accepted")]


@run
async def test_find_first_skips_evses_with_a_transaction_or_a_token() -> None:
    s = Station(evses=3)
    s.session(1, "plug")
    s.charging(1)
    assert await s.swipe(token("A1")) == USED_TO_START
    assert s.peers.take() == [("authorize", 1, "A1", "Accepted")]
    assert await s.swipe(token("B2")) == USED_TO_START
    assert s.peers.take() == [("authorize", 2, "B2", "Accepted")]
    assert await s.swipe(token("C3")) == NO_CONNECTOR
    assert s.peers.statuses[-2:] == [("C3", "Processing"), ("C3", "Rejected")]
    assert s.validator.asked == ["A1", "B2"], "without a free EVSE the token is not even validated"


@run
async def test_user_input_behaves_like_find_first() -> None:
    s = Station(selection_algorithm="UserInput")
    s.session(2, "plug")
    assert await s.swipe(token("A1")) == USED_TO_START
    assert s.peers.take() == [("authorize", 1, "A1", "Accepted")]


@run
async def test_token_limited_to_named_evses() -> None:
    s = Station(evses=3)
    assert await s.swipe(token("A1", connectors=[3, 9])) == USED_TO_START
    assert s.peers.take() == [("authorize", 2, "A1", "Accepted")]


@run
async def test_disabled_and_faulted_evses_are_not_chosen() -> None:
    s = Station(evses=3)
    s.session(1, "Disabled")
    s.auth.on_fault(2, raised=True)
    assert await s.swipe(token("A1")) == USED_TO_START
    assert s.peers.take() == [("authorize", 2, "A1", "Accepted")]
    s.auth.on_fault(2, raised=False)
    assert await s.swipe(token("B2")) == USED_TO_START
    assert s.peers.take() == [("authorize", 1, "B2", "Accepted")]


@run
async def test_faults_can_be_ignored() -> None:
    s = Station(evses=1, ignore_connector_faults=True)
    s.auth.on_fault(1, raised=True)
    s.session(1, "plug")
    assert await s.swipe(token("A1")) == USED_TO_START


# -- PlugEvents -----------------------------------------------------------------------------------------


@run
async def test_plug_events_waits_for_a_plug_in() -> None:
    s = Station(selection_algorithm="PlugEvents", connection_timeout_s=30)
    task = await s.offer(token("A1"))
    await s.timers.advance(10)
    assert not task.done()
    assert s.peers.statuses == [("A1", "Processing"), ("A1", "Accepted")]
    s.session(2, "plug")
    await settle()
    assert task.result() == USED_TO_START
    assert s.peers.take() == [("authorize", 1, "A1", "Accepted")]
    assert s.auth.plug_queue == [], "the plug-in is used up"


@run
async def test_plug_events_takes_a_car_that_already_waits() -> None:
    s = Station(selection_algorithm="PlugEvents")
    s.session(2, "plug")
    assert await s.swipe(token("A1")) == USED_TO_START
    assert s.peers.take() == [("authorize", 1, "A1", "Accepted")]


@run
async def test_plug_events_times_out_without_a_plug_in() -> None:
    s = Station(selection_algorithm="PlugEvents", connection_timeout_s=30)
    task = await s.offer(token("A1"))
    await s.timers.advance(29.5)
    assert not task.done()
    await s.timers.advance(1)
    assert task.result() == TIMEOUT
    assert s.peers.statuses[-1] == ("A1", "TimedOut")
    assert s.peers.take() == []
    assert s.timers.pending == 0


@run
async def test_plug_events_wait_is_ended_by_a_withdrawal() -> None:
    s = Station(selection_algorithm="PlugEvents", connection_timeout_s=30)
    task = await s.offer(token("A1"))
    result = await s.auth.withdraw_authorization({"id_token": {"value": "a1", "type": "ISO14443"}})
    assert result == "Accepted"
    assert task.result() == WITHDRAWN
    assert s.peers.statuses[-1] == ("A1", "Withdrawn")
    assert s.auth.in_process == {}


# -- plug-in timeout ------------------------------------------------------------------------------------


@run
async def test_plug_in_timeout_needs_a_replug() -> None:
    s = Station(connection_timeout_s=20, plug_in_timeout_enabled=True)
    s.session(1, "plug")
    await s.timers.advance(21)
    assert s.peers.take() == [("withdraw", 0)]
    assert not s.auth.evses[1].available
    assert await s.swipe(token("A1")) == USED_TO_START
    assert s.peers.take() == [("authorize", 1, "A1", "Accepted")], "the stale plug-in is passed over"
    s.session(1, "SessionFinished")
    assert s.auth.evses[1].available, "unplugging clears it"


@run
async def test_plug_in_timeout_only_when_enabled_and_with_several_evses() -> None:
    for station in (
        Station(connection_timeout_s=20),
        Station(evses=1, connection_timeout_s=20, plug_in_timeout_enabled=True),
    ):
        station.session(1, "plug")
        await station.timers.advance(60)
        assert station.peers.take() == []
        assert station.auth.evses[1].available


# -- validation -----------------------------------------------------------------------------------------


@run
async def test_validators_are_asked_in_order_until_one_accepts() -> None:
    no, yes, unused = FakeValidator(verdict("Invalid")), FakeValidator(), FakeValidator()
    s = Station(evses=1, validators=[no, yes, unused])
    assert await s.swipe(token("A1")) == USED_TO_START
    assert (no.asked, yes.asked, unused.asked) == (["A1"], ["A1"], [])


@run
async def test_rejection_reports_the_most_telling_result() -> None:
    s = Station(evses=2, validators=[FakeValidator(verdict("Blocked")), FakeValidator(verdict("Unknown"))])
    assert await s.swipe(token("A1", connectors=[2])) == REJECTED
    assert s.peers.take() == [("authorize", 1, "A1", "Blocked")], "the named EVSE hears why"
    assert s.peers.statuses[-1] == ("A1", "Rejected")
    assert await s.swipe(token("B2")) == REJECTED
    assert s.peers.take() == [], "without named EVSEs nobody is told"
    telling = most_telling([verdict("Unknown"), verdict("Expired"), verdict("Invalid")])
    assert telling["authorization_status"] == "Expired"
    assert most_telling([verdict("Unknown")])["authorization_status"] == "Unknown"


@run
async def test_prevalidated_tokens_skip_validation() -> None:
    s = Station(evses=1)
    assert await s.swipe(token("A1", prevalidated=True)) == USED_TO_START
    assert s.validator.asked == []


@run
async def test_validator_restricts_evses() -> None:
    s = Station(evses=2, validators=[FakeValidator(verdict(evse_ids=[7]))])
    assert await s.swipe(token("A1")) == REJECTED
    assert s.peers.take() == [("authorize", 0, "A1", "NotAtThisLocation")]


@run
async def test_tariff_messages_are_published_with_acceptance() -> None:
    message = {"content": "0.39 EUR/kWh"}
    s = Station(evses=1, validators=[FakeValidator(verdict(tariff_messages=[message]))])
    await s.swipe(token("A1"))
    accepted = [m for m in s.peers.status_messages if m["status"] == "Accepted"]
    assert accepted[0]["messages"] == [message]


@run
async def test_a_token_is_handled_once_at_a_time() -> None:
    s = Station(evses=2)
    s.validator.gate = asyncio.Event()
    first = await s.offer(token("A1"))
    assert await s.swipe(token("A1")) == ALREADY_IN_PROCESS
    s.validator.gate.set()
    await settle()
    assert first.result() == USED_TO_START
    assert await s.swipe(token("a1")) == ALREADY_IN_PROCESS, "already authorized, no transaction yet"
    assert s.peers.statuses.count(("A1", "Processing")) == 1


# -- stopping -------------------------------------------------------------------------------------------


@run
async def test_the_same_card_stops_its_transaction() -> None:
    s = Station(evses=2)
    await s.swipe(token("A1"))
    s.charging(1)
    s.peers.take()
    assert await s.swipe(token("a1")) == USED_TO_STOP
    assert s.peers.take() == [("stop", 0, "Local")]
    assert s.peers.status_messages[-1]["token"]["connectors"] == [1]
    s.session(1, "TransactionFinished")
    assert s.auth.evses[1].identifier is None


@run
async def test_only_rfid_tokens_stop_by_themselves() -> None:
    s = Station(evses=1)
    await s.swipe(token("A1", "OCPP"))
    s.charging(1)
    s.peers.take()
    assert await s.swipe(token("A1", "OCPP")) == NO_CONNECTOR
    assert s.peers.take() == []


@run
async def test_parent_token_prefers_a_free_evse_by_default() -> None:
    group = {"value": "FAMILY", "type": "Central"}
    s = Station(evses=2, validators=[FakeValidator(verdict(parent_id_token=group))])
    await s.swipe(token("MUM"))
    s.charging(1)
    s.peers.take()
    assert await s.swipe(token("DAD")) == USED_TO_START, "a free EVSE is used first"
    assert s.peers.take() == [("authorize", 1, "DAD", "Accepted")]
    s.charging(2)
    assert await s.swipe(token("KID")) == USED_TO_STOP, "no EVSE free: the group stops a transaction"
    assert s.peers.take() == [("stop", 0, "Local")]


@run
async def test_parent_token_stops_first_when_not_prioritized() -> None:
    group = {"value": "FAMILY", "type": "Central"}
    validator = FakeValidator(verdict(parent_id_token=group))
    s = Station(evses=2, validators=[validator], prioritize_authorization_over_stopping_transaction=False)
    await s.swipe(token("MUM"))
    s.charging(1)
    s.peers.take()
    assert await s.swipe(token("DAD")) == USED_TO_STOP
    assert s.peers.take() == [("stop", 0, "Local")]
    stopped = s.peers.status_messages[-1]["token"]
    assert stopped["parent_id_token"] == group and stopped["connectors"] == [1]


@run
async def test_master_pass_stops_every_transaction_and_starts_none() -> None:
    police = {"value": "POLICE", "type": "Central"}
    validator = FakeValidator(COP=verdict(parent_id_token=police))
    s = Station(evses=3, validators=[validator], master_pass_group_id="police")
    assert await s.swipe(token("COP")) == REJECTED, "nothing to stop, and it may not start"
    assert s.peers.take() == []
    for evse_id, value in ((1, "A1"), (2, "B2")):
        await s.swipe(token(value))
        s.charging(evse_id)
    s.peers.take()
    assert await s.swipe(token("COP")) == USED_TO_STOP, "EVSE 3 is free, yet the master pass stops"
    assert s.peers.take() == [("stop", 0, "MasterPass"), ("stop", 1, "MasterPass")]
    s.auth.set_master_pass_group_id("")
    assert await s.swipe(token("COP")) == USED_TO_START, "no master pass group any more"


@run
async def test_adopted_transaction_token_can_stop() -> None:
    s = Station(evses=1)
    started = {"id_tag": token("OLD"), "meter_value": {}}
    s.auth.on_session_event(1, event("TransactionStarted", transaction_started=started))
    assert await s.swipe(token("OLD")) == USED_TO_STOP


@run
async def test_deauthorized_clears_the_token() -> None:
    s = Station(evses=1)
    await s.swipe(token("A1"))
    s.session(1, "Deauthorized")
    assert s.auth.evses[1].identifier is None
    assert s.timers.pending == 0


# -- withdrawal and updates -----------------------------------------------------------------------------


@run
async def test_withdraw_authorization() -> None:
    s = Station(evses=2)
    assert await s.auth.withdraw_authorization({"evse_id": 9}) == "EvseNotFound"
    assert await s.auth.withdraw_authorization({}) == "AuthorizationNotFound"
    await s.swipe(token("A1"))
    await s.swipe(token("B2"))
    s.charging(2)
    s.peers.take()
    assert await s.auth.withdraw_authorization({"evse_id": 2, "id_token": {"value": "A1", "type": "ISO14443"}}) == (
        "AuthorizationNotFound"
    )
    assert await s.auth.withdraw_authorization({"id_token": {"value": "b2", "type": "ISO14443"}}) == "Accepted"
    assert s.peers.take() == [("stop", 1, "DeAuthorized")]
    assert await s.auth.withdraw_authorization({"evse_id": 1}) == "Accepted"
    assert s.peers.take() == [("withdraw", 0)]
    assert s.auth.evses[1].identifier is None
    assert withdraw_matches({}, [1], {"value": "x", "type": "ISO14443"})
    assert not withdraw_matches({"evse_id": 2}, [1], {"value": "x", "type": "ISO14443"})


@run
async def test_validation_update() -> None:
    s = Station(evses=1)
    await s.swipe(token("A1"))
    group = {"value": "G", "type": "Central"}
    s.auth.on_validation_update({"connector_id": 1, "validation_result": verdict(parent_id_token=group)})
    last = s.peers.status_messages[-1]
    assert last["status"] == "Accepted"
    assert last["token"] == {**token("A1"), "parent_id_token": group, "connectors": [1]}
    s.auth.on_validation_update({"connector_id": 5, "validation_result": verdict()})
    assert s.peers.status_messages[-1] is last


@pytest.mark.parametrize("algorithm", ["FindFirst", "PlugEvents"])
def test_status_messages_are_valid(contracts, algorithm: str) -> None:
    schema = contracts.interface("auth").vars["token_validation_status"]
    check = contracts.validator(("test", "auth", "token_validation_status"), schema)

    @run
    async def scenario() -> None:
        s = Station(evses=2, selection_algorithm=algorithm)
        s.session(1, "plug")
        await s.swipe(token("A1"))
        for message in s.peers.status_messages:
            check(message)

    scenario()
