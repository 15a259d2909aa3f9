# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EnergyManager: the sharing of current over the tree, phase switching, schedules, and the whole stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from everest_py.modules.energy_manager.broker import BrokerConfig, Stickiness, SwitchMode
from everest_py.modules.energy_manager.limits import Num, SlotLimits, apply_setpoint, entry_limits, watt_from_frequency
from everest_py.modules.energy_manager.market import time_grid
from everest_py.modules.energy_manager.optimizer import Optimizer, OptimizerConfig
from everest_py.modules.energy_manager.tree import fingerprint, is_priority_request
from everest_py.modules.energy_node.schedule import format_time
from everest_py.testing import Probe

from .helpers import poll

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STAMP = format_time(T0)


def limits(**values: Any) -> dict[str, Any]:
    """LimitsReq from keyword values; integers for phase counts, the key as source."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = value if key == "ac_number_of_active_phases" else {"value": value, "source": key}
    return out


def evse(
    uuid: str,
    max_a: float = 32.0,
    min_a: float = 6.0,
    *,
    phases: int = 3,
    min_phases: int = 1,
    active: int = 3,
    state: str = "Charging",
    export_a: float = 0.0,
    power: float | None = None,
) -> dict[str, Any]:
    """An EVSE node as an EvseManager requests it."""
    root = limits(
        ac_max_current_A=max_a,
        ac_min_current_A=min_a,
        ac_max_phase_count=phases,
        ac_min_phase_count=min_phases,
        ac_number_of_active_phases=active,
        total_power_W=power,
    )
    return {
        "uuid": uuid,
        "node_type": "Evse",
        "evse_state": state,
        "children": [],
        "schedule_import": [{"timestamp": STAMP, "limits_to_root": root, "limits_to_leaves": {}}],
        "schedule_export": [
            {
                "timestamp": STAMP,
                "limits_to_root": limits(ac_max_current_A=16.0, ac_max_phase_count=phases),
                "limits_to_leaves": limits(ac_max_current_A=export_a),
            }
        ],
        "schedule_setpoints": [],
    }


def node(
    uuid: str,
    children: list[dict[str, Any]],
    fuse_a: float | None = 16.0,
    *,
    phases: int | None = 3,
    power: float | None = None,
    schedule: list[dict[str, Any]] | None = None,
    setpoints: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Generic node (an EnergyNode) with a fuse."""
    entry = {
        "timestamp": STAMP,
        "limits_to_root": limits(ac_max_current_A=fuse_a, ac_max_phase_count=phases, total_power_W=power),
        "limits_to_leaves": {},
    }
    return {
        "uuid": uuid,
        "node_type": "Generic",
        "children": children,
        "schedule_import": schedule if schedule is not None else [entry],
        "schedule_export": [entry],
        "schedule_setpoints": setpoints or [],
    }


def run(request: dict[str, Any], now: datetime = T0, **broker: Any) -> dict[str, dict[str, Any]]:
    opt = Optimizer(OptimizerConfig(broker=BrokerConfig(**broker)))
    return {e["uuid"]: e for e in opt.run(request, now)}


def amps(result: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {uuid: e["limits_root_side"]["ac_max_current_A"]["value"] for uuid, e in result.items()}


def phase_counts(result: dict[str, dict[str, Any]]) -> dict[str, int | None]:
    return {uuid: e["limits_root_side"].get("ac_max_phase_count", {}).get("value") for uuid, e in result.items()}


# -- sharing current ----------------------------------------------------------------------------------


def test_two_evses_behind_16_a_share_evenly(contracts) -> None:
    result = run(node("fuse", [evse("e1"), evse("e2")]))
    assert amps(result) == {"e1": 8.0, "e2": 8.0}
    assert phase_counts(result) == {"e1": 3, "e2": 3}
    e1 = result["e1"]
    assert e1["valid_for"] == 10
    assert e1["schedule"] == [{"timestamp": STAMP, "limits_to_root": e1["limits_root_side"]}]
    schema = contracts.interface("energy").cmds["enforce_limits"].arguments["value"]
    for value in result.values():
        assert set(value) == {"uuid", "valid_for", "limits_root_side", "schedule"}
        contracts.validator(("test", "energy", "enforce_limits", "value"), schema)(value)


def test_three_evses_behind_16_a_two_get_8_a_one_gets_nothing() -> None:
    # After two minimums of 6 A only 4 A are left: the third EVSE cannot start and gets 0 A.
    assert amps(run(node("fuse", [evse("e1"), evse("e2"), evse("e3")]))) == {"e1": 8.0, "e2": 8.0, "e3": 0.0}


def test_one_evse_gets_the_fuse_or_its_own_maximum() -> None:
    assert amps(run(node("fuse", [evse("e1")]))) == {"e1": 16.0}
    assert amps(run(node("fuse", [evse("e1", max_a=10.0)]))) == {"e1": 10.0}


def test_an_evse_that_requests_nothing_leaves_everything_to_the_other() -> None:
    result = run(node("fuse", [evse("e1"), evse("e2", max_a=0.0, state="Unplugged")]))
    assert amps(result) == {"e1": 16.0, "e2": 0.0}
    assert "ac_max_phase_count" not in result["e2"]["limits_root_side"]


def test_a_small_evse_takes_its_maximum_and_the_other_the_rest() -> None:
    assert amps(run(node("fuse", [evse("e1", max_a=7.0), evse("e2")], fuse_a=24.0))) == {"e1": 7.0, "e2": 17.0}


def test_an_evse_whose_maximum_is_below_its_minimum_gets_nothing() -> None:
    assert amps(run(node("fuse", [evse("e1", max_a=5.0), evse("e2")]))) == {"e1": 0.0, "e2": 16.0}


def test_every_node_on_the_path_limits() -> None:
    # grid 32 A -> sub-distribution 16 A (e1, e2) and e3 directly on the grid node
    tree = node("grid", [node("sub", [evse("e1"), evse("e2")], fuse_a=16.0), evse("e3")], fuse_a=32.0)
    assert amps(run(tree)) == {"e1": 8.0, "e2": 8.0, "e3": 16.0}
    tight = node("grid", [node("sub", [evse("e1"), evse("e2")], fuse_a=20.0), evse("e3")], fuse_a=24.0)
    # 24 A for three: 8 A each; the sub fuse (20 A) does not bind
    assert amps(run(tight)) == {"e1": 8.0, "e2": 8.0, "e3": 8.0}


def test_phase_count_of_a_node_limits_the_evses_below() -> None:
    result = run(node("fuse", [evse("e1")], phases=1))
    assert phase_counts(result) == {"e1": 1}
    assert amps(result) == {"e1": 16.0}


def test_power_limit_reduces_the_current() -> None:
    # 11 kW at 3 x 230 V is 15.94 A per phase
    result = run(node("fuse", [evse("e1")], fuse_a=32.0, power=11000.0))
    e1 = result["e1"]["limits_root_side"]
    assert e1["ac_max_current_A"]["value"] == pytest.approx(11000 / 690, abs=1e-3)
    assert e1["total_power_W"]["value"] == pytest.approx(11000.0, abs=0.5)


def test_power_only_evse_buys_watt_slices() -> None:
    dc = evse("dc", power=20000.0)
    for key in ("ac_max_current_A", "ac_min_current_A"):
        del dc["schedule_import"][0]["limits_to_root"][key]
    tree = node("grid", [dc], fuse_a=None, phases=None, power=50000.0)
    result = run(tree)
    assert result["dc"]["limits_root_side"] == {"total_power_W": {"value": 20000.0, "source": "total_power_W"}}


def test_slices_add_up_without_float_noise() -> None:
    result = run(node("fuse", [evse("e1"), evse("e2")]), slice_ampere=0.1)
    assert amps(result) == {"e1": 8.0, "e2": 8.0}


def test_export_when_import_is_closed() -> None:
    car = evse("v2g", max_a=0.0, min_a=0.0, export_a=10.0)
    result = run(node("fuse", [car]))
    assert amps(result) == {"v2g": -10.0}


def test_setpoint_caps_import() -> None:
    setpoint = {"timestamp": STAMP, "setpoint": {"ac_current_A": 10.0, "priority": 0, "source": "ems"}}
    result = run(node("fuse", [evse("e1"), evse("e2")], fuse_a=32.0, setpoints=[setpoint]))
    # 10 A for two EVSEs with a 6 A minimum: the first one takes all of it
    assert amps(result) == {"e1": 10.0, "e2": 0.0}


def test_tree_without_evses_gives_no_limits() -> None:
    assert run(node("fuse", [])) == {}


# -- schedules ------------------------------------------------------------------------------------------


def test_the_slot_of_now_applies() -> None:
    half = format_time(T0 + timedelta(minutes=30))
    schedule = [
        {"timestamp": STAMP, "limits_to_root": limits(ac_max_current_A=16.0), "limits_to_leaves": {}},
        {"timestamp": half, "limits_to_root": limits(ac_max_current_A=12.0), "limits_to_leaves": {}},
    ]
    tree = node("fuse", [evse("e1"), evse("e2")], schedule=schedule)
    early = run(tree, now=T0 + timedelta(minutes=10))
    assert amps(early) == {"e1": 8.0, "e2": 8.0}
    assert [(s["timestamp"], s["limits_to_root"]["ac_max_current_A"]["value"]) for s in early["e1"]["schedule"]] == [
        (STAMP, 8.0),
        (half, 6.0),
    ]
    assert amps(run(tree, now=T0 + timedelta(minutes=40))) == {"e1": 6.0, "e2": 6.0}
    # after the end of the schedule its last entry stays valid
    assert amps(run(tree, now=T0 + timedelta(hours=5))) == {"e1": 6.0, "e2": 6.0}


def test_time_grid_has_regular_slots_and_every_request_stamp() -> None:
    request = node("fuse", [evse("e1")])
    request["schedule_import"][0]["timestamp"] = format_time(T0 + timedelta(minutes=7))
    grid = time_grid(request, T0 + timedelta(minutes=20), timedelta(minutes=15), timedelta(hours=1))
    minutes = [int((t - T0).total_seconds() // 60) for t in grid]
    # four 15-minute slots from 12:15 (now rounded down), the import stamp 12:07, the others' 12:00
    assert minutes == [0, 7, 15, 30, 45, 60]


def test_entry_limits_merge_both_sides() -> None:
    entry = {
        "timestamp": STAMP,
        "conversion_efficiency": 0.5,
        "limits_to_root": limits(ac_max_current_A=20.0, total_power_W=9000.0, ac_min_current_A=6.0),
        "limits_to_leaves": limits(ac_max_current_A=16.0, total_power_W=4000.0, ac_min_current_A=8.0),
    }
    got = entry_limits(entry)
    assert got.max_current == Num(16.0, "ac_max_current_A")
    assert got.max_power == Num(8000.0, "total_power_W"), "leaves-side power over the efficiency"
    assert got.min_current == Num(8.0, "ac_min_current_A")


def test_setpoints_and_frequency_curve() -> None:
    imp, exp = SlotLimits(max_current=Num(16.0)), SlotLimits(max_current=Num(16.0))
    apply_setpoint(imp, exp, {"ac_current_A": -4.0, "source": "grid"}, None)
    assert (imp.max_current, exp.max_current) == (Num(0.0, "grid"), Num(4.0, "grid"))
    imp, exp = SlotLimits(), SlotLimits()
    table = [{"frequency_Hz": 50.0, "total_power_W": 1000.0}, {"frequency_Hz": 50.2, "total_power_W": 3000.0}]
    apply_setpoint(imp, exp, {"frequency_table": table, "source": "fcr"}, 50.1)
    assert imp.max_power is not None and imp.max_power.value == pytest.approx(2000.0)
    assert exp.max_power == Num(0.0, "fcr")
    assert watt_from_frequency(table, 49.0) == 1000.0
    assert watt_from_frequency(table, 51.0) == 3000.0
    assert watt_from_frequency([], 50.0) == 0.0


# -- switching between one and three phases -------------------------------------------------------------


def phase_tree(power: float, active: int) -> dict[str, Any]:
    return node("grid", [evse("e1", active=active)], fuse_a=32.0, power=power)


def test_never_switch_keeps_three_phases_and_cannot_start_on_too_little_power() -> None:
    # 6 A on three phases needs 4140 W; 3000 W is too little and one phase is not tried
    result = run(phase_tree(3000.0, 3))
    assert amps(result) == {"e1": 0.0}


def test_oneway_drops_to_one_phase_and_stays() -> None:
    result = run(phase_tree(3000.0, 3), switch_mode=SwitchMode.ONEWAY)
    assert phase_counts(result) == {"e1": 1}
    assert amps(result)["e1"] == pytest.approx(3000 / 230, abs=1e-3)
    # plenty of power later, the EVSE now runs on one phase: Oneway does not go back
    result = run(phase_tree(20000.0, 1), switch_mode=SwitchMode.ONEWAY)
    assert phase_counts(result) == {"e1": 1}


def test_both_switches_back_only_after_the_time_hysteresis() -> None:
    cfg = OptimizerConfig(broker=BrokerConfig(switch_mode=SwitchMode.BOTH, time_hysteresis_s=600))
    opt = Optimizer(cfg)

    def phases(power: float, active: int, at: datetime) -> int:
        result = {e["uuid"]: e for e in opt.run(phase_tree(power, active), at)}
        value: int = result["e1"]["limits_root_side"]["ac_max_phase_count"]["value"]
        return value

    assert phases(3000.0, 3, T0) == 1, "too little power for three phases"
    assert phases(20000.0, 1, T0 + timedelta(seconds=10)) == 1, "within the time hysteresis"
    assert phases(20000.0, 1, T0 + timedelta(seconds=599)) == 1
    assert phases(20000.0, 1, T0 + timedelta(seconds=601)) == 3, "stable long enough"


def test_power_hysteresis_keeps_the_active_phases() -> None:
    # 4140 W is the three-phase minimum; between it and 4140 + 200 W the active phases stay
    kw = {"switch_mode": SwitchMode.BOTH, "time_hysteresis_s": 0, "power_hysteresis_W": 200}
    assert phase_counts(run(phase_tree(4250.0, 1), **kw)) == {"e1": 1}
    assert phase_counts(run(phase_tree(4250.0, 3), **kw)) == {"e1": 3}
    assert phase_counts(run(phase_tree(4400.0, 1), **kw)) == {"e1": 3}
    assert phase_counts(run(phase_tree(4000.0, 3), **kw)) == {"e1": 1}


def test_switch_limit_and_stickiness() -> None:
    cfg = BrokerConfig(
        switch_mode=SwitchMode.BOTH,
        time_hysteresis_s=0,
        max_switches_per_session=1,
        stickiness=Stickiness.SINGLE_PHASE,
    )
    opt = Optimizer(OptimizerConfig(broker=cfg))

    def phases(power: float, active: int) -> int:
        value: int = opt.run(phase_tree(power, active), T0)[0]["limits_root_side"]["ac_max_phase_count"]["value"]
        return value

    # Each change of the active phases reported by the EVSE counts (its first report too); the
    # limit is checked before this run's change is counted.
    assert phases(20000.0, 3) == 3  # 1 change
    assert phases(3000.0, 3) == 1  # still 1
    assert phases(20000.0, 1) == 3  # 2 changes: now above the limit
    assert phases(20000.0, 3) == 1, "limit exceeded: sticks to one phase despite the power"
    # a new session starts counting again
    unplugged = phase_tree(20000.0, 1)
    unplugged["children"][0]["evse_state"] = "Unplugged"
    opt.run(unplugged, T0)
    assert phases(20000.0, 3) == 3


# -- tree questions -------------------------------------------------------------------------------------


def test_priority_and_fingerprint() -> None:
    tree = node("fuse", [evse("e1"), evse("e2")])
    assert not is_priority_request(tree)
    tree["children"][1]["priority_request"] = True
    assert is_priority_request(tree)
    before = fingerprint(tree)
    tree["children"][0]["energy_usage_root"] = {"timestamp": STAMP, "energy_Wh_import": {"total": 1.0}}
    tree["children"][1]["priority_request"] = False
    assert fingerprint(tree) == before, "meter readings and the priority flag are no change"
    tree["children"][0]["evse_state"] = "PausedEV"
    assert fingerprint(tree) != before


# -- over the wire ----------------------------------------------------------------------------------------


def stack_config() -> dict[str, Any]:
    return {
        "active_modules": {
            "energy_manager": {
                "module": "EnergyManager",
                "config_module": {"update_interval": 1},
                "connections": {"energy_trunk": [{"module_id": "grid", "implementation_id": "energy_grid"}]},
            },
            "grid": {
                "module": "EnergyNode",
                "config_module": {"fuse_limit_A": 16.0, "phase_count": 3},
                "connections": {
                    "energy_consumer": [
                        {"module_id": "probe", "implementation_id": "evse1"},
                        {"module_id": "probe", "implementation_id": "evse2"},
                    ]
                },
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {"grid_limits": [{"module_id": "grid", "implementation_id": "external_limits"}]},
            },
        }
    }


def test_energy_tree_over_the_wire(make_stack, run_probe) -> None:
    stack, prefix = make_stack(stack_config())
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    received: dict[str, list[dict[str, Any]]] = {"evse1": [], "evse2": []}

    def setup(probe: Probe) -> None:
        for impl, calls in received.items():
            probe.implement(impl, "enforce_limits", lambda value, calls=calls: calls.append(value))

    async def latest() -> dict[str, float | None]:
        return {
            impl: (values[-1]["limits_root_side"]["ac_max_current_A"]["value"] if values else None)
            for impl, values in received.items()
        }

    async def scenario(probe: Probe) -> None:
        for impl in received:
            request = evse(impl)
            request["priority_request"] = True
            probe.publish_var(impl, "energy_flow_request", request)
        got = await poll(latest, lambda v: v == {"evse1": 8.0, "evse2": 8.0}, timeout_s=5)
        assert got == {"evse1": 8.0, "evse2": 8.0}
        assert received["evse1"][-1]["uuid"] == "evse1", "each EVSE gets only its own limits"
        assert all(v["uuid"] == "evse2" for v in received["evse2"])
        assert received["evse1"][-1]["valid_for"] == 10

        now = format_time(datetime.now(UTC))
        external = {
            "schedule_import": [
                {"timestamp": now, "limits_to_root": limits(ac_max_current_A=12.0), "limits_to_leaves": {}}
            ],
            "schedule_export": [],
            "schedule_setpoints": [],
        }
        await probe.call("grid_limits", "set_external_limits", {"value": external})
        got = await poll(latest, lambda v: v == {"evse1": 6.0, "evse2": 6.0}, timeout_s=5)
        assert got == {"evse1": 6.0, "evse2": 6.0}

        # without an update the limits are renewed every update_interval
        async def renewals() -> int:
            return len(received["evse1"])

        count = await renewals()
        assert await poll(renewals, lambda n: n >= count + 2, timeout_s=5) >= count + 2

    run_probe(prefix, scenario, setup)
    assert stack.stop() == 0
