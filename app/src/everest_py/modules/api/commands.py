# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Commands of the MQTT API: a raw payload on ``everest_api/<evse>/cmd/<name>`` -> the calls to make.

:func:`plan` parses one command and returns the calls (on the EVSE manager, its energy sink or its
random-delay provider) in the order they are made, or raises ValueError for a payload it cannot use.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from everest_py.modules.api.session import rfc3339

SOURCE = "API_module"  # the source named in external limits set through the API
DEFAULT_PRIORITY = 100  # priority of enable/disable requests that name none

Target = Literal["evse", "sink", "random_delay"]

ENABLE_SOURCES = (
    "Unspecified",
    "LocalAPI",
    "LocalKeyLock",
    "ServiceTechnician",
    "RemoteKeyLock",
    "MobileApp",
    "FirmwareUpdate",
    "CSMS",
)
ENABLE_STATES = ("Unassigned", "Disable", "Enable")

EVSE_COMMANDS = (
    "enable_disable",
    "enable",
    "disable",
    "pause_charging",
    "resume_charging",
    "stop_charging",
    "force_unlock",
)
SINK_COMMANDS = ("set_limit_amps", "set_limit_watts", "set_limit_amps_phases")
RANDOM_DELAY_COMMANDS = ("uk_random_delay", "uk_random_delay_set_max_duration_s")
COMMANDS = EVSE_COMMANDS + SINK_COMMANDS + RANDOM_DELAY_COMMANDS


@dataclass(frozen=True)
class Call:
    """One command call on a requirement of this EVSE."""

    target: Target
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a number")

    return json.loads(text, parse_constant=refuse)


def _integer(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be an integer, not {text!r}") from None


def _number(text: str, what: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {text!r}")
    return value


def _pick(value: Any, choices: tuple[str, ...], what: str) -> str:
    """``value`` as one of ``choices``, letter case ignored."""
    if isinstance(value, str):
        for choice in choices:
            if choice.lower() == value.strip().lower():
                return choice
    raise ValueError(f"{what} must be one of {', '.join(choices)}, not {value!r}")


def _json_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{what} must be an integer, not {value!r}")
    return int(value)


def enable_disable(payload: str) -> tuple[int, dict[str, Any]]:
    """``{"connector_id", "source", "state", "priority"}`` (all optional) -> connector id and EnableDisableSource."""
    if not payload.strip():
        raise ValueError("enable_disable needs a JSON object")
    try:
        arg = _strict_json(payload)
    except ValueError as err:
        raise ValueError(f"enable_disable: not JSON: {err}") from None
    if not isinstance(arg, dict):
        raise ValueError("enable_disable needs a JSON object")
    connector = _json_int(arg.get("connector_id", 0), "connector_id")
    source = _pick(arg.get("source", "LocalAPI"), ENABLE_SOURCES, "source")
    state = _pick(arg.get("state", "Enable"), ENABLE_STATES, "state")
    priority = _json_int(arg.get("priority", DEFAULT_PRIORITY), "priority")
    if not 0 <= priority <= 10000:
        raise ValueError(f"priority must be 0..10000, not {priority}")
    if connector < 0:
        raise ValueError(f"connector_id must not be negative, not {connector}")
    return connector, {"enable_source": source, "enable_state": state, "enable_priority": priority}


def external_limits(limit: float, *, watts: bool, now: datetime) -> dict[str, Any]:
    """/energy#/ExternalLimits for ``set_limit_amps``/``set_limit_watts``.

    A positive limit caps import and blocks export; a negative one caps export (by its magnitude) and
    blocks import.
    """
    key = "total_power_W" if watts else "ac_max_current_A"
    stamp = rfc3339(now)
    target = {
        "timestamp": stamp,
        "limits_to_root": {},
        "limits_to_leaves": {key: {"value": abs(limit), "source": SOURCE}},
    }
    zero = {"timestamp": stamp, "limits_to_root": {}, "limits_to_leaves": {key: {"value": 0.0, "source": SOURCE}}}
    if limit > 0:
        return {"schedule_import": [target], "schedule_export": [zero], "schedule_setpoints": []}
    return {"schedule_import": [zero], "schedule_export": [target], "schedule_setpoints": []}


def external_limits_with_phases(amps: float, phases: int, now: datetime) -> dict[str, Any]:
    """/energy#/ExternalLimits for ``set_limit_amps_phases``: a current limit that also fixes the phase count."""
    if phases not in (1, 3):
        raise ValueError(f"phases must be 1 or 3, not {phases}")
    stamp = rfc3339(now)
    target = {
        "timestamp": stamp,
        "limits_to_root": {},
        "limits_to_leaves": {
            "ac_max_phase_count": {"value": phases, "source": SOURCE},
            "ac_min_phase_count": {"value": phases, "source": SOURCE},
            "ac_max_current_A": {"value": abs(amps), "source": SOURCE},
        },
    }
    if amps > 0:
        return {"schedule_import": [target], "schedule_export": [], "schedule_setpoints": []}
    zero = {
        "timestamp": stamp,
        "limits_to_root": {},
        "limits_to_leaves": {"ac_max_current_A": {"value": 0.0, "source": SOURCE}},
    }
    return {"schedule_import": [zero], "schedule_export": [target], "schedule_setpoints": []}


def _amps_phases(payload: str) -> tuple[float, int]:
    try:
        arg = _strict_json(payload)
    except ValueError as err:
        raise ValueError(f"set_limit_amps_phases: not JSON: {err}") from None
    if not isinstance(arg, dict) or "amps" not in arg or "phases" not in arg:
        raise ValueError('set_limit_amps_phases needs {"amps": <number>, "phases": 1|3}')
    amps = arg["amps"]
    if isinstance(amps, bool) or not isinstance(amps, int | float):
        raise ValueError(f"amps must be a number, not {amps!r}")
    return float(amps), _json_int(arg["phases"], "phases")


def plan(cmd: str, payload: str, now: datetime) -> list[Call]:
    """The calls for command ``cmd`` with raw ``payload``; ValueError if the payload is unusable."""
    text = payload.strip()
    if cmd == "enable_disable":
        connector, source = enable_disable(payload)
        return [Call("evse", "enable_disable", {"connector_id": connector, "cmd_source": source})]
    if cmd in ("enable", "disable"):
        if not text:
            raise ValueError(f"{cmd} needs a connector id (0: the whole EVSE)")
        connector = _integer(text, "the connector id")
        if connector < 0:
            raise ValueError(f"the connector id must not be negative, not {connector}")
        state = "Enable" if cmd == "enable" else "Disable"
        source = {"enable_source": "LocalAPI", "enable_state": state, "enable_priority": DEFAULT_PRIORITY}
        return [Call("evse", "enable_disable", {"connector_id": connector, "cmd_source": source})]
    if cmd == "pause_charging":
        return [Call("evse", "pause_charging")]
    if cmd == "resume_charging":
        return [Call("evse", "resume_charging")]
    if cmd == "stop_charging":
        return [Call("evse", "stop_transaction", {"request": {"reason": "Local"}})]
    if cmd == "force_unlock":
        connector = _integer(text, "the connector id") if text else 1
        if connector < 1:
            raise ValueError(f"the connector id must be 1 or more, not {connector}")
        return [
            Call("evse", "stop_transaction", {"request": {"reason": "UnlockCommand"}}),
            Call("evse", "force_unlock", {"connector_id": connector}),
        ]
    if cmd in ("set_limit_amps", "set_limit_watts"):
        limit = _number(text, "the limit")
        return [
            Call("sink", "set_external_limits", {"value": external_limits(limit, watts=cmd.endswith("watts"), now=now)})
        ]
    if cmd == "set_limit_amps_phases":
        amps, phases = _amps_phases(payload)
        return [Call("sink", "set_external_limits", {"value": external_limits_with_phases(amps, phases, now)})]
    if cmd == "uk_random_delay":
        action = _pick(text, ("enable", "disable", "cancel"), "uk_random_delay")
        return [Call("random_delay", action)]
    if cmd == "uk_random_delay_set_max_duration_s":
        seconds = _integer(text, "the duration")
        if seconds < 0:
            raise ValueError(f"the duration must not be negative, not {seconds}")
        return [Call("random_delay", "set_duration_s", {"value": seconds})]
    raise ValueError(f"unknown command {cmd!r}")
