# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Injections from outside: the external MQTT payload ``{"fault": name, "value": ...}``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Injection:
    name: str
    value: Any


def parse(payload: str | bytes) -> Injection:
    """The injection in ``payload``; ValueError says what is wrong with it."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError('expected an object {"fault": name, "value": ...}')
    name = data.get("fault")
    if not isinstance(name, str) or not name:
        raise ValueError('"fault" must name an injection')
    if "value" not in data:
        raise ValueError(f'{name}: "value" is missing')
    unknown = sorted(set(data) - {"fault", "value"})
    if unknown:
        raise ValueError(f"unknown keys {', '.join(unknown)}")
    return Injection(name, data["value"])
