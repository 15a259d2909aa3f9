# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EnergyNode: its own limits, external limits under the fuse, prices, routing, and over the wire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from everest_py.modules.energy_node.node import EnergyNode, NodeConfig, limit_schedule, merge_prices, subtree_uuids
from everest_py.modules.energy_node.schedule import active_index, floor_to, format_time, parse_time
from everest_py.testing import Probe

from .helpers import poll

NOW = datetime(2025, 3, 1, 12, 34, 56, 789000, tzinfo=UTC)
CFG = NodeConfig(uuid="grid", fuse_limit_A=32.0, phase_count=3)
SRC = "grid/module_config"


def n(value: float, source: str = "ext") -> dict[str, Any]:
    return {"value": value, "source": source}


def entry(at: datetime, **root: Any) -> dict[str, Any]:
    return {"timestamp": format_time(at), "limits_to_root": dict(root), "limits_to_leaves": {}}


# -- time helpers --------------------------------------------------------------------------------------


def test_time_format_and_floor() -> None:
    assert format_time(NOW) == "2025-03-01T12:34:56.789Z"
    assert parse_time("2025-03-01T13:34:56.789+01:00") == NOW
    assert parse_time("2025-03-01T12:34:56.789") == NOW, "no offset counts as UTC"
    assert floor_to(NOW, timedelta(hours=1)) == datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert floor_to(NOW, timedelta(minutes=15)) == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_time("noon")


@pytest.mark.parametrize(
    ("minute", "index"),
    [(0, 0), (9, 0), (10, 0), (19, 0), (20, 1), (29, 1), (30, 2), (90, 2)],
)
def test_active_index(minute: int, index: int) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    times = [base + timedelta(minutes=m) for m in (10, 20, 30)]
    assert active_index(times, base + timedelta(minutes=minute)) == index
    assert active_index([], base) == -1


# -- the node's request -----------------------------------------------------------------------------------


def test_request_without_external_limits() -> None:
    node = EnergyNode(CFG, consumers=2)
    node.on_child_request(1, {"uuid": "b"})
    node.on_child_request(0, {"uuid": "a"})
    node.on_child_request(1, {"uuid": "b", "evse_state": "Charging"})
    request = node.request(NOW)
    local = {"ac_max_current_A": n(32.0, SRC), "ac_max_phase_count": n(3, SRC)}
    expected_entry = {"timestamp": "2025-03-01T12:00:00.000Z", "limits_to_root": local, "limits_to_leaves": local}
    assert request == {
        "uuid": "grid",
        "node_type": "Generic",
        "children": [{"uuid": "a"}, {"uuid": "b", "evse_state": "Charging"}],
        "schedule_import": [expected_entry],
        "schedule_export": [expected_entry],
        "schedule_setpoints": [],
    }


def test_request_validates(contracts) -> None:
    node = EnergyNode(CFG, consumers=1)
    node.energy_usage_root = {"timestamp": format_time(NOW), "energy_Wh_import": {"total": 12.5}}
    schema = contracts.interface("energy").vars["energy_flow_request"]
    contracts.validator(("test", "energy", "energy_flow_request"), schema)(node.request(NOW))


def test_phase_count_zero_is_not_limited() -> None:
    node = EnergyNode(NodeConfig(uuid="x", fuse_limit_A=16.0, phase_count=0), consumers=1)
    assert node.request(NOW)["schedule_import"][0]["limits_to_root"] == {"ac_max_current_A": n(16.0, "x/module_config")}


def test_external_limits_stay_under_the_fuse() -> None:
    schedule = [
        entry(NOW, ac_max_current_A=n(40.0)),
        entry(NOW + timedelta(minutes=15), ac_max_current_A=n(10.0), ac_max_phase_count=n(1)),
        entry(NOW + timedelta(minutes=30), total_power_W=n(5000.0), ac_max_phase_count=n(4)),
    ]
    out = limit_schedule(schedule, CFG)
    assert [e["limits_to_root"] for e in out] == [
        {"ac_max_current_A": n(32.0, SRC), "ac_max_phase_count": n(3, SRC)},
        {"ac_max_current_A": n(10.0), "ac_max_phase_count": n(1)},
        {"total_power_W": n(5000.0), "ac_max_current_A": n(32.0, SRC), "ac_max_phase_count": n(3, SRC)},
    ]
    assert schedule[0]["limits_to_root"] == {"ac_max_current_A": n(40.0)}, "the input is not changed"


def test_enhance_external_schedule_turns_power_into_current() -> None:
    cfg = NodeConfig(uuid="grid", fuse_limit_A=32.0, phase_count=3, enhance_external_schedule=True)
    out = limit_schedule([entry(NOW, total_power_W=n(6900.0))], cfg)
    assert out[0]["limits_to_root"]["ac_max_current_A"] == n(10.0, SRC)
    single = limit_schedule([entry(NOW, total_power_W=n(2300.0), ac_max_phase_count=n(1))], cfg)
    assert single[0]["limits_to_root"]["ac_max_current_A"] == n(10.0, SRC)
    given = limit_schedule([entry(NOW, total_power_W=n(6900.0), ac_max_current_A=n(20.0))], cfg)
    assert given[0]["limits_to_root"]["ac_max_current_A"] == n(20.0), "a given current is kept"


def test_set_external_limits_replaces_schedules() -> None:
    node = EnergyNode(CFG, consumers=1)
    setpoint = {"timestamp": format_time(NOW), "setpoint": {"ac_current_A": 8.0, "priority": 1, "source": "x"}}
    node.set_external_limits(
        {
            "schedule_import": [entry(NOW, ac_max_current_A=n(20.0))],
            "schedule_export": [],
            "schedule_setpoints": [setpoint],
        }
    )
    request = node.request(NOW)
    assert request["schedule_import"][0]["limits_to_root"]["ac_max_current_A"] == n(20.0)
    assert request["schedule_export"][0]["limits_to_root"]["ac_max_current_A"] == n(32.0, SRC), "empty: local"
    assert request["schedule_setpoints"] == [setpoint]
    node.set_external_limits({"schedule_import": [], "schedule_export": [], "schedule_setpoints": []})
    assert node.request(NOW)["schedule_import"][0]["limits_to_root"]["ac_max_current_A"] == n(32.0, SRC)


def test_prices_are_merged_into_the_schedules() -> None:
    schedule = [entry(NOW, ac_max_current_A=n(20.0)), entry(NOW + timedelta(hours=1), ac_max_current_A=n(10.0))]
    prices = [
        {"timestamp": format_time(NOW), "value": 0.30, "currency": "EUR"},
        {"timestamp": format_time(NOW + timedelta(minutes=30)), "value": 0.10, "currency": "EUR"},
    ]
    merged = merge_prices(schedule, prices, NOW)
    assert [
        (e["timestamp"][11:16], e["limits_to_root"]["ac_max_current_A"]["value"], e["price_per_kwh"]["value"])
        for e in merged
    ] == [("12:34", 20.0, 0.30), ("13:04", 20.0, 0.10), ("13:34", 10.0, 0.10)]
    assert merge_prices(schedule, [], NOW) == schedule


def test_route_follows_the_subtrees() -> None:
    node = EnergyNode(CFG, consumers=3)
    node.on_child_request(0, {"uuid": "sub", "children": [{"uuid": "evse1", "children": []}]})
    node.on_child_request(2, {"uuid": "evse3", "children": []})
    assert node.route("evse1") == [0]
    assert node.route("sub") == [0]
    assert node.route("evse3") == [2]
    assert node.route("grid") == [], "limits for the node itself stay here"
    assert node.route("unknown") == [0, 1, 2], "unknown uuids go to every consumer"
    assert subtree_uuids({"uuid": "a", "children": [{"uuid": "b", "children": [{"uuid": "c"}]}]}) == {"a", "b", "c"}


# -- over the wire ----------------------------------------------------------------------------------------


def stack_config() -> dict[str, Any]:
    return {
        "active_modules": {
            "grid": {
                "module": "EnergyNode",
                "config_module": {"fuse_limit_A": 20.0, "phase_count": 1},
                "connections": {
                    "energy_consumer": [
                        {"module_id": "probe", "implementation_id": "left"},
                        {"module_id": "probe", "implementation_id": "right"},
                    ]
                },
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {
                    "node": [{"module_id": "grid", "implementation_id": "energy_grid"}],
                    "node_limits": [{"module_id": "grid", "implementation_id": "external_limits"}],
                },
            },
        }
    }


def child(uuid: str) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "node_type": "Evse",
        "children": [],
        "schedule_import": [],
        "schedule_export": [],
        "schedule_setpoints": [],
    }


def test_node_over_the_wire(make_stack, run_probe) -> None:
    stack, prefix = make_stack(stack_config())
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    forwarded: dict[str, list[str]] = {"left": [], "right": []}

    def setup(probe: Probe) -> None:
        for impl, uuids in forwarded.items():
            probe.implement(impl, "enforce_limits", lambda value, uuids=uuids: uuids.append(value["uuid"]))

    async def scenario(probe: Probe) -> None:
        requests = probe.subscribe_var("node", "energy_flow_request")

        async def next_request(done: Any) -> dict[str, Any]:
            while True:
                value: dict[str, Any] = await requests.get()
                if done(value):
                    return value

        probe.publish_var("right", "energy_flow_request", child("evse_r"))
        probe.publish_var("left", "energy_flow_request", child("evse_l"))
        got = await next_request(lambda r: len(r["children"]) == 2)
        assert [c["uuid"] for c in got["children"]] == ["evse_l", "evse_r"], "connection order"
        assert got["uuid"] == "grid"
        assert got["schedule_import"][0]["limits_to_root"]["ac_max_current_A"]["value"] == 20.0
        assert got["schedule_import"][0]["limits_to_root"]["ac_max_phase_count"]["value"] == 1

        ext = {
            "schedule_import": [entry(datetime.now(UTC), ac_max_current_A=n(50.0), total_power_W=n(3000.0))],
            "schedule_export": [],
            "schedule_setpoints": [],
        }
        await probe.call("node_limits", "set_external_limits", {"value": ext})
        got = await next_request(lambda r: "total_power_W" in r["schedule_import"][0]["limits_to_root"])
        root = got["schedule_import"][0]["limits_to_root"]
        assert root["ac_max_current_A"] == n(20.0, SRC), "the fuse caps external limits"
        assert root["total_power_W"] == n(3000.0)

        limits = {"uuid": "evse_r", "valid_for": 10, "limits_root_side": {}, "schedule": []}
        await probe.call("node", "enforce_limits", {"value": limits})
        await probe.call("node", "enforce_limits", {"value": dict(limits, uuid="grid")})
        await probe.call("node", "enforce_limits", {"value": dict(limits, uuid="elsewhere")})

        async def both() -> dict[str, list[str]]:
            return forwarded

        await poll(both, lambda f: len(f["left"]) == 1 and len(f["right"]) == 2)
        assert forwarded == {"left": ["elsewhere"], "right": ["evse_r", "elsewhere"]}

    run_probe(prefix, scenario, setup)
    assert stack.stop() == 0
