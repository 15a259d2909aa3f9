# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""What Auth knows of each EVSE: its connectors' availability, plug and transaction, the token on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any


class ConnectorState(IntEnum):
    """Availability of a connector; the order matters when states of several connectors are merged."""

    AVAILABLE = 0
    UNAVAILABLE = 1
    FAULTED = 2
    OCCUPIED = 3
    UNAVAILABLE_FAULTED = 4
    FAULTED_OCCUPIED = 5


class ConnectorEvent(Enum):
    ENABLE = "enable"
    DISABLE = "disable"
    FAULTED = "faulted"
    ERROR_CLEARED = "error_cleared"
    TRANSACTION_STARTED = "transaction_started"
    SESSION_FINISHED = "session_finished"


S, E = ConnectorState, ConnectorEvent
# (state, event) -> next state; events not listed leave the state as it is.
TRANSITIONS: dict[tuple[ConnectorState, ConnectorEvent], ConnectorState] = {
    (S.AVAILABLE, E.TRANSACTION_STARTED): S.OCCUPIED,
    (S.AVAILABLE, E.DISABLE): S.UNAVAILABLE,
    (S.AVAILABLE, E.FAULTED): S.FAULTED,
    (S.UNAVAILABLE, E.ENABLE): S.AVAILABLE,
    (S.UNAVAILABLE, E.FAULTED): S.UNAVAILABLE_FAULTED,
    (S.FAULTED, E.ERROR_CLEARED): S.AVAILABLE,
    (S.FAULTED, E.DISABLE): S.UNAVAILABLE_FAULTED,
    (S.OCCUPIED, E.SESSION_FINISHED): S.AVAILABLE,
    (S.OCCUPIED, E.FAULTED): S.FAULTED_OCCUPIED,
    (S.FAULTED_OCCUPIED, E.ERROR_CLEARED): S.OCCUPIED,
    (S.FAULTED_OCCUPIED, E.SESSION_FINISHED): S.FAULTED,
    (S.UNAVAILABLE_FAULTED, E.ENABLE): S.FAULTED,
    (S.UNAVAILABLE_FAULTED, E.ERROR_CLEARED): S.UNAVAILABLE,
}

UNKNOWN_TYPE = "Unknown"


@dataclass
class Connector:
    id: int
    type: str = UNKNOWN_TYPE
    state: ConnectorState = ConnectorState.AVAILABLE

    def submit(self, event: ConnectorEvent) -> bool:
        """Apply ``event``; True if the state changed."""
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:
            return False
        self.state = nxt
        return True

    @property
    def unavailable(self) -> bool:
        return self.state in (ConnectorState.UNAVAILABLE, ConnectorState.UNAVAILABLE_FAULTED)

    def fits(self, connector_type: str) -> bool:
        """Whether this connector can serve a car that needs ``connector_type`` (Unknown fits all)."""
        return UNKNOWN_TYPE in (self.type, connector_type) or self.type == connector_type


@dataclass
class Identifier:
    """The token an EVSE is authorized with (until its transaction ends)."""

    id_token: dict[str, Any]
    authorization_type: str
    status: str | None = None
    expiry_time: str | None = None
    parent_id_token: dict[str, Any] | None = None


def same_token(a: str | None, b: str | None) -> bool:
    """Token values compare case-insensitively (/authorization#/IdToken)."""
    return a is not None and b is not None and a.casefold() == b.casefold()


@dataclass
class Evse:
    evse_id: int
    index: int  # position in the evse_manager connections
    connectors: list[Connector] = field(default_factory=list)
    transaction_active: bool = False
    plugged_in: bool = False
    plug_in_timeout: bool = False  # no token came in time after the plug-in: a replug is needed
    identifier: Identifier | None = None

    def connector(self, connector_id: int) -> Connector | None:
        return next((c for c in self.connectors if c.id == connector_id), None)

    @property
    def available(self) -> bool:
        """Free to be authorized: no token on it, no timed-out plug-in, no occupied connector and at
        least one connector that is neither unavailable nor faulted."""
        if self.plug_in_timeout or self.identifier is not None:
            return False
        states = [c.state for c in self.connectors]
        if ConnectorState.OCCUPIED in states or ConnectorState.FAULTED_OCCUPIED in states:
            return False
        return any(s not in (ConnectorState.UNAVAILABLE, ConnectorState.FAULTED) for s in states)

    @property
    def unavailable(self) -> bool:
        """Every connector is switched off: the EVSE is out of the game."""
        return all(c.unavailable for c in self.connectors)

    def token_matches(self, value: str) -> bool:
        """``value`` is the token or the parent token the EVSE is authorized with."""
        ident = self.identifier
        if ident is None:
            return False
        parent = ident.parent_id_token.get("value") if ident.parent_id_token else None
        return same_token(ident.id_token.get("value"), value) or same_token(parent, value)

    def has_connector_type(self, connector_type: str) -> bool:
        return connector_type == UNKNOWN_TYPE or any(c.fits(connector_type) for c in self.connectors)
