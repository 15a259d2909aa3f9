# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Auth logic: reservations for one EVSE or any EVSE, expiry, tokens against reservations, persistence."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from everest_py.modules.auth.evse import ConnectorState
from everest_py.modules.auth.reservations import merge_state, reservation_evse_id
from everest_py.modules.auth.tokens import NO_CONNECTOR, REJECTED, USED_TO_START

from .fakes import Station, run, token


def reservation(rid: int, id_token: str, evse_id: int | None = None, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"reservation_id": rid, "id_token": id_token, "expiry_time": "", **extra}
    if evse_id is not None:
        r["evse_id"] = evse_id
    return r


def reserve(s: Station, r: dict[str, Any], minutes: float = 30) -> str:
    """reserve_now as the module does it, the EVSE always agreeing."""
    r["expiry_time"] = (s.timers.now() + timedelta(minutes=minutes)).isoformat()
    result = s.auth.reserve_now(r)
    if result == "Accepted":
        s.auth.reservation_placed(r["reservation_id"])
    return result


def test_merge_state() -> None:
    S = ConnectorState
    assert merge_state(S.UNAVAILABLE, S.OCCUPIED) is S.OCCUPIED
    assert merge_state(S.UNAVAILABLE, S.FAULTED) is S.FAULTED
    assert merge_state(S.UNAVAILABLE, S.FAULTED_OCCUPIED) is S.OCCUPIED
    assert merge_state(S.UNAVAILABLE, S.UNAVAILABLE_FAULTED) is S.FAULTED
    assert merge_state(S.OCCUPIED, S.UNAVAILABLE_FAULTED) is S.OCCUPIED
    assert merge_state(S.FAULTED, S.UNAVAILABLE) is S.FAULTED
    assert reservation_evse_id({"evse_id": 0}) is None
    assert reservation_evse_id({"evse_id": -1}) is None
    assert reservation_evse_id({"evse_id": 2}) == 2


@run
async def test_reservation_of_one_evse() -> None:
    s = Station(evses=2)
    assert reserve(s, reservation(7, "RESERVED", evse_id=1)) == "Accepted"
    assert s.peers.take() == [("update", 7, "Placed")]
    assert s.auth.exists_reservation({"id_token": "reserved", "evse_id": 1}) == "ReservedForToken"
    assert s.auth.exists_reservation({"id_token": "OTHER", "evse_id": 1}) == "ReservedForOtherToken"
    assert s.auth.exists_reservation({"id_token": "OTHER", "evse_id": 2}) == "NotReserved"
    assert s.auth.exists_reservation({"id_token": "RESERVED"}) == "NotReserved", "no reservation for any EVSE"
    # somebody else goes to the other EVSE
    assert await s.swipe(token("OTHER")) == USED_TO_START
    assert s.peers.take() == [("authorize", 1, "OTHER", "Accepted")]
    # and then only the reserved EVSE is left, which says why not
    assert await s.swipe(token("THIRD")) == REJECTED
    assert s.peers.take() == [("authorize", 0, "THIRD", "NotAtThisTime")]
    # the reserved token gets its EVSE; the reservation is used up without an update
    assert await s.swipe(token("RESERVED")) == USED_TO_START
    assert s.peers.take() == [("authorize", 0, "RESERVED", "Accepted")]
    _, result = s.peers.last_authorized
    assert result["reservation_id"] == 7
    assert not s.auth.reservations.is_reserved(1)


@run
async def test_reserved_evse_refuses_other_tokens() -> None:
    s = Station(evses=1)
    reserve(s, reservation(7, "RESERVED", evse_id=1))
    s.peers.take()
    assert await s.swipe(token("OTHER")) == NO_CONNECTOR
    assert s.peers.take() == []


@run
async def test_parent_token_of_a_reservation() -> None:
    group = {"value": "FLEET", "type": "Central"}
    s = Station(evses=1)
    s.validator.default = {"authorization_status": "Accepted", "tariff_messages": [], "parent_id_token": group}
    reserve(s, reservation(7, "DRIVER1", evse_id=1, parent_id_token="fleet"))
    assert s.auth.exists_reservation({"id_token": "DRIVER2", "evse_id": 1}) == "ReservedForOtherTokenAndHasParentToken"
    assert s.auth.exists_reservation({"id_token": "DRIVER2", "evse_id": 1, "group_id_token": "FLEET"}) == (
        "ReservedForToken"
    )
    assert await s.swipe(token("DRIVER2")) == USED_TO_START, "same fleet"


def test_reservation_refusals() -> None:
    s = Station(evses=3, connector_types=["cType2", "cType2", "cCCS2"])
    s.session(1, "plug")
    s.session(2, "Disabled")
    s.auth.on_fault(3, raised=True)
    assert reserve(s, reservation(1, "A", evse_id=1)) == "Occupied"
    assert reserve(s, reservation(2, "A", evse_id=2)) == "Unavailable"
    assert reserve(s, reservation(3, "A", evse_id=3)) == "Faulted"
    assert reserve(s, reservation(4, "A", evse_id=9)) == "Rejected"
    assert reserve(s, reservation(5, "A", evse_id=3, connector_type="cTesla")) == "Rejected"
    assert reserve(s, reservation(6, "A", evse_id=1), minutes=-1) == "Rejected", "expired already"
    assert reserve(s, reservation(7, "A", connector_type="cTesla")) == "Rejected", "no such connector here"
    assert s.peers.take() == []


def test_same_id_replaces_and_a_reserved_evse_is_occupied() -> None:
    s = Station(evses=2)
    assert reserve(s, reservation(1, "A", evse_id=1)) == "Accepted"
    assert reserve(s, reservation(2, "B", evse_id=1)) == "Occupied"
    assert reserve(s, reservation(1, "A", evse_id=2)) == "Accepted", "id 1 moves to EVSE 2"
    assert not s.auth.reservations.is_reserved(1)
    assert s.auth.reservations.is_reserved(2)


@run
async def test_reservations_for_any_evse() -> None:
    s = Station(evses=2)
    assert reserve(s, reservation(1, "A")) == "Accepted"
    assert s.peers.take() == [("update", 1, "Placed")], "one of two EVSEs is enough: nothing blocked"
    assert s.auth.exists_reservation({"id_token": "A"}) == "ReservedForToken"
    assert reserve(s, reservation(2, "B")) == "Accepted"
    assert s.peers.take() == [("update", 2, "Placed"), ("reserve", 1, -1), ("reserve", 2, -1)]
    assert reserve(s, reservation(3, "C")) == "Occupied"
    assert await s.swipe(token("C")) == NO_CONNECTOR, "both EVSEs are needed for the reservations"
    assert await s.swipe(token("B")) == USED_TO_START
    assert s.peers.take() == [("authorize", 0, "B", "Accepted")]
    # B's car starts charging: EVSE 2 stays blocked for A, EVSE 1 is busy anyway
    s.charging(1)
    assert s.peers.take() == []
    assert await s.auth.withdraw_authorization({}) == "Accepted"
    s.peers.take()
    # A cancels: EVSE 2 is released
    assert s.auth.cancel_reservation(1)
    assert s.peers.take() == [("cancel_reservation", 2)]
    assert not s.auth.cancel_reservation(1)


def test_reservation_for_a_connector_type() -> None:
    s = Station(evses=3, connector_types=["cType2", "cType2", "cCCS2"])
    assert reserve(s, reservation(1, "A", connector_type="cCCS2")) == "Accepted"
    assert s.peers.take() == [("update", 1, "Placed"), ("reserve", 3, -1)], "the only CCS EVSE is blocked"
    assert reserve(s, reservation(2, "B", connector_type="cCCS2")) == "Occupied"
    assert reserve(s, reservation(3, "C", evse_id=3)) == "Occupied", "EVSE 3 is needed by reservation 1"
    assert reserve(s, reservation(4, "D", evse_id=1)) == "Accepted"


@run
async def test_expiry() -> None:
    s = Station(evses=2)
    reserve(s, reservation(5, "A", evse_id=2), minutes=1)
    s.peers.take()
    await s.timers.advance(59)
    assert s.peers.take() == []
    await s.timers.advance(2)
    assert s.peers.take() == [("cancel_reservation", 2), ("update", 5, "Expired")]
    assert s.auth.exists_reservation({"id_token": "A", "evse_id": 2}) == "NotReserved"


def test_cancel_tells_the_evse_but_sends_no_update() -> None:
    s = Station(evses=2)
    reserve(s, reservation(5, "A", evse_id=2))
    s.peers.take()
    assert s.auth.cancel_reservation(5)
    assert s.peers.take() == [("cancel_reservation", 2)]
    assert s.timers.pending == 0


def test_reservation_end_event_and_faults_end_reservations() -> None:
    s = Station(evses=2, connector_types=["cType2", "cType2"])
    reserve(s, reservation(5, "A", evse_id=2))
    s.peers.take()
    s.session(2, "ReservationEnd")
    assert s.peers.take() == [("cancel_reservation", 2), ("update", 5, "Removed")]
    reserve(s, reservation(6, "A", evse_id=1, connector_type="cType2"))
    s.peers.take()
    s.auth.on_fault(1, raised=True)
    assert s.peers.take() == [("cancel_reservation", 1), ("update", 6, "Removed")]


def test_store_and_load() -> None:
    s = Station(evses=2)
    reserve(s, reservation(5, "A", evse_id=2))
    reserve(s, reservation(6, "B"))
    stored = s.peers.stored[-1]
    assert [item.get("evse_id") for item in stored] == [2, None]
    assert [item["reservation"]["reservation_id"] for item in stored] == [5, 6]
    again = Station(evses=2)
    expired = {"reservation": reservation(7, "C", evse_id=1) | {"expiry_time": "2000-01-01T00:00:00Z"}, "evse_id": 1}
    again.auth.reservations.load([*stored, expired, "junk"])
    assert again.auth.exists_reservation({"id_token": "A", "evse_id": 2}) == "ReservedForToken"
    assert again.auth.exists_reservation({"id_token": "B"}) == "ReservedForToken"
    assert again.peers.take() == [
        ("reserve", 2, 5),  # the EVSE is told again
        ("cancel_reservation", 1),  # 7 expired meanwhile
        ("update", 7, "Removed"),
        ("reserve", 1, -1),  # the last free EVSE is held for B
    ]
    again.auth.reservations.load(None)
    assert again.auth.reservations.snapshot() == stored


@run
async def test_token_rejected_at_an_evse_a_reserved_car_needs() -> None:
    s = Station(evses=1)
    reserve(s, reservation(1, "A"))
    s.peers.take()
    assert await s.swipe(token("B")) == NO_CONNECTOR
    s.validator.default = {"authorization_status": "Accepted", "tariff_messages": []}
    assert await s.swipe(token("A")) == USED_TO_START
    assert s.auth.exists_reservation({"id_token": "A"}) == "NotReserved", "used up"
