# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Reservations: for one EVSE or for any EVSE (with a connector type), their expiry and persistence."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from everest_py.modules.auth.evse import UNKNOWN_TYPE, ConnectorState, Evse, same_token
from everest_py.modules.auth.timers import Timer, Timers

log = logging.getLogger(__name__)

# /reservation#/ReservationResult
ACCEPTED, FAULTED, OCCUPIED, REJECTED, UNAVAILABLE = "Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"
# /reservation#/ReservationEndReason
EXPIRED, CANCELLED, USED = "Expired", "Cancelled", "UsedToStartCharging"
# what a reservation_update says when a reservation ends for a reason (a used one is not announced)
UPDATE_FOR_END = {EXPIRED: "Expired", CANCELLED: "Removed"}

RESULT_OF_STATE = {
    ConnectorState.AVAILABLE: ACCEPTED,
    ConnectorState.UNAVAILABLE: UNAVAILABLE,
    ConnectorState.FAULTED: FAULTED,
    ConnectorState.UNAVAILABLE_FAULTED: FAULTED,
    ConnectorState.FAULTED_OCCUPIED: FAULTED,
    ConnectorState.OCCUPIED: OCCUPIED,
}

Reservation = dict[str, Any]


class ReservationPeers(Protocol):
    """What reservations do outside the logic (the EVSEs, the reservation_update var, the store)."""

    def cancel_on_evse(self, evse_id: int) -> None: ...
    def reserve_on_evse(self, evse_id: int, reservation_id: int) -> None: ...
    def publish_update(self, reservation_id: int, status: str) -> None: ...
    def store(self, reservations: list[dict[str, Any]]) -> None: ...


def merge_state(current: ConnectorState, new: ConnectorState) -> ConnectorState:
    """The state that describes two connectors together (the worse one, occupied first)."""
    if new is ConnectorState.OCCUPIED:
        return new
    if new > current:
        if new is ConnectorState.FAULTED_OCCUPIED:
            return ConnectorState.OCCUPIED
        if new is ConnectorState.UNAVAILABLE_FAULTED:
            return current if current is ConnectorState.OCCUPIED else ConnectorState.FAULTED
        return new
    return current


def reservation_evse_id(reservation: Mapping[str, Any]) -> int | None:
    """The EVSE a reservation is for; None (any EVSE) for a missing, 0 or negative evse_id."""
    evse_id = reservation.get("evse_id")
    return evse_id if isinstance(evse_id, int) and evse_id > 0 else None


class Reservations:
    """All reservations of the station, checked against what the EVSEs can still serve.

    A reservation for a given EVSE blocks that EVSE. A reservation for any EVSE (possibly for one
    connector type) blocks none in particular, but no reservation is accepted, and no EVSE may start
    charging without one, unless every reserved car can still find an EVSE whatever order the cars
    arrive in and whichever EVSE each of them takes.
    """

    def __init__(self, evses: dict[int, Evse], timers: Timers, peers: ReservationPeers) -> None:
        self.evses = evses
        self.timers = timers
        self.peers = peers
        self.by_evse: dict[int, Reservation] = {}
        self.anywhere: list[Reservation] = []
        self._expiry: dict[int, Timer] = {}
        self._reserved_for_anywhere: set[int] = set()

    # -- queries ------------------------------------------------------------------------------------
    def is_reserved(self, evse_id: int) -> bool:
        return evse_id in self.by_evse

    def evse_of(self, reservation_id: int) -> int | None:
        return next((e for e, r in self.by_evse.items() if r["reservation_id"] == reservation_id), None)

    def exists(self, reservation_id: int) -> bool:
        return reservation_id in self._expiry

    def matches(self, id_token: str, evse_id: int | None, parent_id_token: str | None) -> int | None:
        """The id of the reservation ``id_token`` (or its parent token) may use at ``evse_id``.

        A reservation of the EVSE itself decides alone; otherwise the reservations for any EVSE count.
        """

        def fits(r: Reservation) -> bool:
            return same_token(r["id_token"], id_token) or same_token(r.get("parent_id_token"), parent_id_token)

        if evse_id is not None and evse_id in self.by_evse:
            r = self.by_evse[evse_id]
            return int(r["reservation_id"]) if fits(r) else None
        return next((int(r["reservation_id"]) for r in self.anywhere if fits(r)), None)

    def has_parent(self, evse_id: int | None) -> bool:
        """Whether the reservation of ``evse_id``, or any reservation for any EVSE, has a parent token."""
        if evse_id is not None:
            if evse_id not in self.evses:
                return False
            if evse_id in self.by_evse:
                return "parent_id_token" in self.by_evse[evse_id]
        return any("parent_id_token" in r for r in self.anywhere)

    def charging_possible(self, evse_id: int) -> bool:
        """Whether a car may charge at ``evse_id`` without taking an EVSE a reserved car needs."""
        if evse_id in self.by_evse or evse_id not in self.evses:
            return False
        return self._possible(None, self.anywhere, {**self.by_evse, evse_id: {}})

    def check(self, id_token: str, evse_id: int | None, group_id_token: str | None) -> str:
        """exists_reservation: /reservation#/ReservationCheckStatus."""
        found = self.matches(id_token, evse_id, group_id_token)
        if evse_id is None:
            return "ReservedForToken" if found is not None else "NotReserved"
        if not self.is_reserved(evse_id):
            return "NotReserved"
        if found is not None:
            return "ReservedForToken"
        if group_id_token is None and self.has_parent(evse_id):
            return "ReservedForOtherTokenAndHasParentToken"
        return "ReservedForOtherToken"

    # -- what the EVSEs can serve ---------------------------------------------------------------------
    def _evse_result(self, evse_id: int, by_evse: Mapping[int, Reservation]) -> str:
        evse = self.evses[evse_id]
        if evse.plugged_in:
            return OCCUPIED
        for c in evse.connectors:
            if c.state in (ConnectorState.OCCUPIED, ConnectorState.FAULTED_OCCUPIED):
                return RESULT_OF_STATE[c.state]
        return OCCUPIED if evse_id in by_evse else ACCEPTED

    def _connector_result(self, evse_id: int, connector_type: str) -> str:
        state = ConnectorState.UNAVAILABLE
        for c in self.evses[evse_id].connectors:
            if c.fits(connector_type):
                if c.state is ConnectorState.AVAILABLE:
                    return ACCEPTED
                state = merge_state(state, c.state)
        return RESULT_OF_STATE[state]

    def _free_for(self, evse_id: int, connector_type: str, by_evse: Mapping[int, Reservation]) -> bool:
        return (
            self._evse_result(evse_id, by_evse) == ACCEPTED
            and self.evses[evse_id].has_connector_type(connector_type)
            and self._connector_result(evse_id, connector_type) == ACCEPTED
        )

    def _possible(
        self, extra_type: str | None, anywhere: list[Reservation], by_evse: Mapping[int, Reservation]
    ) -> bool:
        """Whether every reservation for any EVSE (plus one of ``extra_type``) is sure to find an EVSE."""
        types = [r.get("connector_type", UNKNOWN_TYPE) for r in anywhere]
        if extra_type is not None:
            types.append(extra_type)
        if len(types) + len(by_evse) > len(self.evses):
            return False
        if not types:
            return True
        known: dict[tuple[frozenset[int], tuple[str, ...]], bool] = {}

        def all_served(taken: frozenset[int], cars: tuple[str, ...]) -> bool:
            # The next car must find a free EVSE, and whichever it takes, the rest must still be served.
            key = (taken, cars)
            if key not in known:
                choices = [e for e in sorted(self.evses) if e not in taken and self._free_for(e, cars[0], by_evse)]
                known[key] = bool(choices) and (
                    len(cars) == 1 or all(all_served(taken | {e}, cars[1:]) for e in choices)
                )
            return known[key]

        return all(all_served(frozenset(), order) for order in set(itertools.permutations(types)))

    def _refusal(self, connector_type: str) -> str:
        """Why a reservation that is not possible is refused (Occupied, Faulted, Unavailable...)."""
        if self.anywhere or self.by_evse:
            return OCCUPIED
        state = ConnectorState.UNAVAILABLE
        if any(e.plugged_in for e in self.evses.values()):
            return OCCUPIED
        fitting = [e for e in self.evses.values() if e.has_connector_type(connector_type)]
        if not fitting:
            return REJECTED
        for evse in fitting:
            for c in evse.connectors:
                if c.fits(connector_type) and c.state is not ConnectorState.AVAILABLE:
                    state = merge_state(state, c.state)
        return RESULT_OF_STATE[state]

    # -- changes --------------------------------------------------------------------------------------
    def make(self, reservation: Reservation) -> str:
        """Place ``reservation`` (replacing one with the same id); /reservation#/ReservationResult."""
        try:
            expiry = datetime.fromisoformat(str(reservation["expiry_time"]))
        except ValueError:
            return REJECTED
        expiry = expiry.replace(tzinfo=UTC) if expiry.tzinfo is None else expiry
        if self.timers.now() > expiry:
            return REJECTED
        rid = int(reservation["reservation_id"])
        self.cancel(rid, CANCELLED, notify=False)  # the same id again replaces the old one (OCPP H01.FR.01)
        ctype = str(reservation.get("connector_type", UNKNOWN_TYPE))
        evse_id = reservation_evse_id(reservation)
        if evse_id is not None:
            if evse_id in self.by_evse:
                return OCCUPIED
            if evse_id not in self.evses:
                return REJECTED
            if not self.evses[evse_id].has_connector_type(ctype):
                return REJECTED
            for result in (self._evse_result(evse_id, self.by_evse), self._connector_result(evse_id, ctype)):
                if result != ACCEPTED:
                    return result
            if self.anywhere and not self._possible(None, self.anywhere, {**self.by_evse, evse_id: reservation}):
                return self._refusal(ctype)
            self.by_evse[evse_id] = dict(reservation)
        else:
            if "connector_type" in reservation and not any(e.has_connector_type(ctype) for e in self.evses.values()):
                return REJECTED
            if not self._possible(ctype, self.anywhere, self.by_evse):
                return self._refusal(ctype)
            self.anywhere.append(dict(reservation))
        delay = (expiry - self.timers.now()).total_seconds()
        self._expiry[rid] = self.timers.call_later(delay, lambda: self._expired(rid))
        self._store()
        log.info("reservation %d placed for %s", rid, f"EVSE {evse_id}" if evse_id else "any EVSE")
        return ACCEPTED

    def _expired(self, reservation_id: int) -> None:
        log.info("reservation %d expired", reservation_id)
        self.cancel(reservation_id, EXPIRED, notify=True)

    def cancel(self, reservation_id: int, reason: str, notify: bool) -> tuple[bool, int | None]:
        """End a reservation; returns whether it existed and its EVSE.

        With ``notify`` the EVSE is told, a reservation_update goes out for an expired (Expired) or
        cancelled (Removed) one, and the EVSEs blocked for reservations for any EVSE are updated.
        """
        timer = self._expiry.pop(reservation_id, None)
        if timer is None:
            return False, None
        timer.cancel()
        evse_id = self.evse_of(reservation_id)
        if evse_id is not None:
            del self.by_evse[evse_id]
        else:
            self.anywhere = [r for r in self.anywhere if r["reservation_id"] != reservation_id]
        self._store()
        log.info("reservation %d ended: %s", reservation_id, reason)
        if notify:
            self.ended(reservation_id, evse_id, reason, send_update=True)
        return True, evse_id

    def ended(self, reservation_id: int, evse_id: int | None, reason: str, send_update: bool) -> None:
        """Tell the outside that a reservation is over."""
        if evse_id is not None:
            self.peers.cancel_on_evse(evse_id)
        status = UPDATE_FOR_END.get(reason)
        if send_update and status is not None:
            self.peers.publish_update(reservation_id, status)
        self.update_blocked_evses()

    def used(self, reservation_id: int) -> None:
        """The reserved token started charging: the reservation is over (nothing is announced)."""
        self.cancel(reservation_id, USED, notify=False)

    def on_connector_changed(self, evse_id: int, connector_id: int) -> None:
        """A connector of ``evse_id`` changed state: drop reservations that can no longer be served."""
        evse = self.evses.get(evse_id)
        connector = evse.connector(connector_id) if evse is not None else None
        if connector is None or connector.state is ConnectorState.AVAILABLE:
            return
        r = self.by_evse.get(evse_id)
        if r is not None and "connector_type" in r and connector.fits(str(r["connector_type"])):
            self.cancel(int(r["reservation_id"]), CANCELLED, notify=True)
            return
        self._drop_impossible()

    def _drop_impossible(self) -> None:
        kept_by_evse: dict[int, Reservation] = {}
        kept_anywhere: list[Reservation] = []
        doomed = []
        for evse_id, r in self.by_evse.items():
            kept_by_evse[evse_id] = r
            if not self._possible(None, kept_anywhere, kept_by_evse):
                doomed.append(r["reservation_id"])
                del kept_by_evse[evse_id]
        for r in self.anywhere:
            if self._possible(r.get("connector_type", UNKNOWN_TYPE), kept_anywhere, kept_by_evse):
                kept_anywhere.append(r)
            else:
                doomed.append(r["reservation_id"])
        for rid in doomed:
            self.cancel(int(rid), CANCELLED, notify=True)

    def update_blocked_evses(self) -> None:
        """Reserve (with id -1) the free EVSEs that reservations for any EVSE need, release the others."""
        free = {e for e in self.evses if self._free_for(e, UNKNOWN_TYPE, self.by_evse)}
        if len(free) == len(self.anywhere):
            blocked = set(free)
        else:
            blocked = set()
            for r in self.anywhere:
                ctype = r.get("connector_type", UNKNOWN_TYPE)
                if not self._possible(ctype, self.anywhere, self.by_evse):
                    blocked |= {e for e in free if self.evses[e].has_connector_type(ctype)}
        released = {e for e in free if e not in blocked and e in self._reserved_for_anywhere}
        newly = blocked - self._reserved_for_anywhere
        self._reserved_for_anywhere = blocked
        for evse_id in sorted(released):
            self.peers.cancel_on_evse(evse_id)
        for evse_id in sorted(newly):
            self.peers.reserve_on_evse(evse_id, -1)

    # -- persistence ----------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """The reservations as EVerest stores them in the kvs."""
        out: list[dict[str, Any]] = [{"evse_id": e, "reservation": r} for e, r in sorted(self.by_evse.items())]
        return out + [{"reservation": r} for r in self.anywhere]

    def _store(self) -> None:
        self.peers.store(self.snapshot())

    def load(self, stored: Any) -> None:
        """Place the reservations of an earlier run again; those no longer possible are cancelled."""
        if not isinstance(stored, list):
            if stored is not None:
                log.warning("stored reservations are not a list: ignored")
            return
        for item in stored:
            r = item.get("reservation") if isinstance(item, Mapping) else None
            if not isinstance(r, Mapping) or not isinstance(r.get("reservation_id"), int):
                log.error("a stored reservation is unusable: %r", item)
                continue
            reservation = dict(r)
            if isinstance(item.get("evse_id"), int):
                reservation["evse_id"] = item["evse_id"]
            result = self.make(reservation)
            rid, evse_id = int(reservation["reservation_id"]), reservation_evse_id(reservation)
            if result != ACCEPTED:
                log.warning("stored reservation %d cannot be placed again (%s): cancelled", rid, result)
                self.ended(rid, evse_id, CANCELLED, send_update=True)
            elif evse_id is not None:
                self.peers.reserve_on_evse(evse_id, rid)
        self.update_blocked_evses()
