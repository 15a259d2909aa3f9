# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The token a DummyTokenProvider offers, built from its config."""

from __future__ import annotations

from typing import Any

# /authorization#/AuthorizationType
AUTHORIZATION_TYPES = ("OCPP", "RFID", "Autocharge", "PlugAndCharge", "BankCard")


def provided_token(value: str, authorization_type: str, connector_id: int) -> dict[str, Any]:
    """The ProvidedIdToken to offer; ValueError if ``authorization_type`` is not an AuthorizationType.

    As in EVerest the id token is always typed ISO14443 (an RFID card number) and the token is its
    own parent, so a second swipe of the same card also matches by group.
    """
    if authorization_type not in AUTHORIZATION_TYPES:
        raise ValueError(
            f"type {authorization_type!r} is not an authorization type (one of {', '.join(AUTHORIZATION_TYPES)})"
        )
    id_token = {"value": value, "type": "ISO14443"}
    token: dict[str, Any] = {
        "id_token": id_token,
        "parent_id_token": dict(id_token),
        "authorization_type": authorization_type,
    }
    if connector_id > 0:
        token["connectors"] = [connector_id]
    return token


def wants_token(session_event: Any) -> bool:
    """True for the session event on which a token is offered (the EVSE waits for authorization)."""
    return isinstance(session_event, dict) and session_event.get("event") == "AuthRequired"
