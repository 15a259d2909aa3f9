# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Error injection from EVerest's SIL tooling: ``carsim/error`` payloads to (implementation, error type)."""

from __future__ import annotations

import json
from dataclasses import dataclass

BOARD = "board_support"
RCD = "rcd"
LOCK = "connector_lock"
METER = "powermeter"

# Short names with a prefix address the other implementations: ac_rcd_DC, lock_ConnectorLockFailedLock, ...
_PREFIXES = (("ac_rcd_", RCD, "ac_rcd/"), ("lock_", LOCK, "connector_lock/"), ("powermeter_", METER, "generic/"))
# Full error types (namespace/Name) go to the implementation whose interface lists the namespace.
_NAMESPACES = {"evse_board_support": BOARD, "ac_rcd": RCD, "connector_lock": LOCK, "generic": METER}


@dataclass(frozen=True)
class Injection:
    impl: str
    error_type: str
    active: bool


def target(name: str) -> tuple[str, str]:
    """(implementation id, full error type) for an injected error name; ValueError if it names nothing."""
    name = name.strip()
    if "/" in name:
        namespace, _, short = name.partition("/")
        impl = _NAMESPACES.get(namespace)
        if impl is None or not short:
            raise ValueError(f"error type {name!r}: namespace {namespace!r} is not one of this board's")
        return impl, name
    for prefix, impl, namespace in _PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return impl, namespace + name[len(prefix) :]
    if not name:
        raise ValueError("the error type is empty")
    return BOARD, f"evse_board_support/{name}"


def parse(payload: str) -> Injection:
    """``{"error_type": "MREC6UnderVoltage", "raise": "true"}`` (raise also as a JSON boolean)."""
    try:
        data = json.loads(payload)
    except ValueError:
        raise ValueError("the payload is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the payload is not a JSON object")
    name, flag = data.get("error_type"), data.get("raise")
    if not isinstance(name, str):
        raise ValueError("error_type must be a string")
    if isinstance(flag, str) and flag.strip().lower() in ("true", "false"):
        active = flag.strip().lower() == "true"
    elif isinstance(flag, bool):
        active = flag
    else:
        raise ValueError('raise must be "true" or "false"')
    impl, error_type = target(name)
    return Injection(impl, error_type, active)
