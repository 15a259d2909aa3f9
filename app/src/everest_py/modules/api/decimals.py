# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Rounding of published values: the ``<quantity>_round_to`` step first, then ``<quantity>_decimal_places``.

Each quantity of the API config (``powermeter_power``, ``hw_caps_max_current_import`` …) has a step
(0: none) and a number of digits kept after the decimal point. The functions here turn an
interface value (power meter, hardware capabilities, limits, telemetry) into the JSON object the
API publishes, with those rules applied to every number of that quantity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The 18 quantities of the manifest, each with <name>_decimal_places and <name>_round_to.
QUANTITIES = (
    "powermeter_energy_import",
    "powermeter_energy_export",
    "powermeter_power",
    "powermeter_voltage",
    "powermeter_VAR",
    "powermeter_current",
    "powermeter_frequency",
    "hw_caps_max_current_export",
    "hw_caps_max_current_import",
    "hw_caps_min_current_export",
    "hw_caps_min_current_import",
    "hw_caps_max_plug_temperature_C",
    "limits_max_current",
    "telemetry_evse_temperature_C",
    "telemetry_fan_rpm",
    "telemetry_supply_voltage_12V",
    "telemetry_supply_voltage_minus_12V",
    "telemetry_plug_temperature_C",
)


@dataclass(frozen=True)
class Precision:
    """How one quantity is rounded."""

    decimal_places: int = 2
    round_to: float = 0.0

    def __call__(self, value: float) -> float:
        if self.round_to > 0:
            steps = abs(value) / self.round_to
            value = math.copysign(math.floor(steps + 0.5) * self.round_to, value)
        return round(float(value), self.decimal_places)


Precisions = Mapping[str, Precision]


def precisions(config: Any) -> dict[str, Precision]:
    """The precision of every quantity from the module config (attributes ``<name>_decimal_places``/``_round_to``)."""
    return {
        name: Precision(int(getattr(config, f"{name}_decimal_places")), float(getattr(config, f"{name}_round_to")))
        for name in QUANTITIES
    }


def _phases(value: Mapping[str, Any], keys: tuple[str, ...], p: Precision) -> dict[str, float]:
    return {k: p(value[k]) for k in keys if k in value}


def powermeter(pm: Mapping[str, Any], p: Precisions) -> dict[str, Any]:
    """/powermeter#/Powermeter as published on ``var/powermeter`` (signed values and temperatures left out)."""
    out: dict[str, Any] = {"timestamp": pm["timestamp"]}
    if "meter_id" in pm:
        out["meter_id"] = pm["meter_id"]
    if "phase_seq_error" in pm:
        out["phase_seq_error"] = pm["phase_seq_error"]
    out["energy_Wh_import"] = _phases(
        pm["energy_Wh_import"], ("total", "L1", "L2", "L3"), p["powermeter_energy_import"]
    )
    sections = (
        ("energy_Wh_export", ("total", "L1", "L2", "L3"), "powermeter_energy_export"),
        ("power_W", ("total", "L1", "L2", "L3"), "powermeter_power"),
        ("voltage_V", ("DC", "L1", "L2", "L3"), "powermeter_voltage"),
        ("VAR", ("total", "L1", "L2", "L3"), "powermeter_VAR"),
        ("current_A", ("DC", "L1", "L2", "L3", "N"), "powermeter_current"),
        ("frequency_Hz", ("L1", "L2", "L3"), "powermeter_frequency"),
    )
    for key, phases, quantity in sections:
        if key in pm:
            out[key] = _phases(pm[key], phases, p[quantity])
    return out


def hw_capabilities(caps: Mapping[str, Any], p: Precisions) -> dict[str, Any]:
    """/evse_board_support#/HardwareCapabilities as published on ``var/hardware_capabilities``."""
    out: dict[str, Any] = {
        "max_phase_count_import": caps["max_phase_count_import"],
        "min_phase_count_import": caps["min_phase_count_import"],
        "max_phase_count_export": caps["max_phase_count_export"],
        "min_phase_count_export": caps["min_phase_count_export"],
        "supports_changing_phases_during_charging": caps["supports_changing_phases_during_charging"],
        "max_current_A_import": p["hw_caps_max_current_import"](caps["max_current_A_import"]),
        "min_current_A_import": p["hw_caps_min_current_import"](caps["min_current_A_import"]),
        "max_current_A_export": p["hw_caps_max_current_export"](caps["max_current_A_export"]),
        "min_current_A_export": p["hw_caps_min_current_export"](caps["min_current_A_export"]),
    }
    if "max_plug_temperature_C" in caps:
        out["max_plug_temperature_C"] = p["hw_caps_max_plug_temperature_C"](caps["max_plug_temperature_C"])
    if "connector_type" in caps:
        out["connector_type"] = caps["connector_type"]
    return out


def limits(value: Mapping[str, Any], p: Precisions) -> dict[str, Any]:
    """/evse_manager#/Limits as published on ``var/limits``."""
    out: dict[str, Any] = {}
    if "uuid" in value:
        out["uuid"] = value["uuid"]
    out["nr_of_phases_available"] = value["nr_of_phases_available"]
    out["max_current"] = p["limits_max_current"](value["max_current"])
    return out


def telemetry(value: Mapping[str, Any], p: Precisions) -> dict[str, Any]:
    """/evse_board_support#/Telemetry as published on ``var/telemetry`` (EVerest's key names: ``temperature``)."""
    out: dict[str, Any] = {
        "temperature": p["telemetry_evse_temperature_C"](value["evse_temperature_C"]),
        "fan_rpm": p["telemetry_fan_rpm"](value["fan_rpm"]),
        "supply_voltage_12V": p["telemetry_supply_voltage_12V"](value["supply_voltage_12V"]),
        "supply_voltage_minus_12V": p["telemetry_supply_voltage_minus_12V"](value["supply_voltage_minus_12V"]),
        "relais_on": value["relais_on"],
    }
    if "plug_temperature_C" in value:
        out["plug_temperature_C"] = p["telemetry_plug_temperature_C"](value["plug_temperature_C"])
    return out
