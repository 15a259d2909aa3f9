# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Reading a ProvidedIdToken from the text of an MQTT message."""

from __future__ import annotations

import json
from typing import Any

DEFAULT_TOPIC = "everest_api/{module_id}/cmd/provide"


def topic(configured: str, module_id: str) -> str:
    """The external topic to listen on: the configured one, else EVerest's default for this module."""
    return configured or DEFAULT_TOPIC.format(module_id=module_id)


def parse_token(text: str) -> dict[str, Any]:
    """The ProvidedIdToken in ``text``; ValueError naming the first problem.

    Only the shape every consumer relies on is checked here (an object with ``id_token.value``,
    ``id_token.type`` and ``authorization_type`` as strings); the full schema is checked when the
    token is published.
    """
    try:
        token = json.loads(text)
    except ValueError as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(token, dict):
        raise ValueError(f"a token must be a JSON object, not {type(token).__name__}")
    id_token = token.get("id_token")
    if not isinstance(id_token, dict):
        raise ValueError("the token has no id_token object")
    for key in ("value", "type"):
        if not isinstance(id_token.get(key), str):
            raise ValueError(f"id_token.{key} must be a string")
    if not isinstance(token.get("authorization_type"), str):
        raise ValueError("authorization_type must be a string")
    return token
