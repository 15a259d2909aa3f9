# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""ErrorHistory: recording raised and cleared errors, every filter, ClearedByReboot, kill -9."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from everest_py.framework import wire
from everest_py.modules.error_history.history import (
    ErrorDatabase,
    Record,
    record_from_wire,
    severity,
    where_clause,
)
from everest_py.testing import Probe

from .helpers import poll


def wire_error(
    etype: str = "generic/CommunicationFault",
    sub_type: str = "",
    *,
    module_id: str = "board",
    impl_id: str = "main",
    sev: str = "Low",
    timestamp: str = "2024-05-01T10:00:00.000Z",
    handle: str | None = None,
    message: str = "something broke",
    description: str = "Generic fault",
) -> dict[str, Any]:
    return {
        "type": etype,
        "sub_type": sub_type,
        "description": description,
        "message": message,
        "origin": {"module_id": module_id, "implementation_id": impl_id, "mapping": {"evse": 1}},
        "severity": sev,
        "timestamp": timestamp,
        "uuid": handle or wire.new_id(),
        "state": "Active",
        "vendor_id": "everest",
    }


# -- the logic -------------------------------------------------------------------------------------------


def test_record_from_wire() -> None:
    error = wire_error(sev="High", timestamp="2024-05-01T12:00:00.5+02:00", handle="u-1")
    rec = record_from_wire(error)
    assert rec == Record(
        uuid="u-1",
        type="generic/CommunicationFault",
        sub_type="",
        description="Generic fault",
        message="something broke",
        severity="High",
        module_id="board",
        implementation_id="main",
        timestamp="2024-05-01T10:00:00.500Z",
        time_us=1714557600_500000,
        state="Active",
    )


def test_record_from_wire_fills_gaps_and_refuses_errors_without_origin() -> None:
    error = wire_error(timestamp="yesterday")
    del error["uuid"], error["sub_type"]
    now = datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    rec = record_from_wire(error, now=now)
    assert rec.timestamp == "2024-01-02T03:04:05.006Z"
    assert rec.sub_type == ""
    assert len(rec.uuid) == 36
    for broken in ({"origin": None}, {"origin": {"module_id": "m"}}, {"type": ""}):
        with pytest.raises(ValueError):
            record_from_wire({**wire_error(), **broken})


@pytest.mark.parametrize(
    ("wire_severity", "expected"),
    [("High", "High"), ("Medium", "Medium"), ("Low", "Low"), ("high", "High"), ("Urgent", "Low"), (None, "Low")],
)
def test_severity(wire_severity: Any, expected: str) -> None:
    assert severity(wire_severity) == expected


@pytest.mark.parametrize(
    "filters",
    [
        {"state_filter": "Gone"},
        {"severity_filter": "HIGH"},
        {"origin_filter": {"module_id": "m"}},
        {"type_filter": 3},
        {"timeperiod_filter": {"timestamp_from": "2024-01-01T00:00:00Z"}},
        {"timeperiod_filter": {"timestamp_from": "then", "timestamp_to": "now"}},
    ],
)
def test_bad_filters(filters: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        where_clause(filters)


def filled_db(path: Path) -> tuple[ErrorDatabase, list[dict[str, Any]]]:
    db = ErrorDatabase(path)
    errors = [
        wire_error("evse_board_support/DiodeFault", sev="High", timestamp="2024-05-01T10:00:00.000Z"),
        wire_error("generic/CommunicationFault", "bus", sev="Medium", timestamp="2024-05-01T11:00:00.000Z"),
        wire_error("generic/VendorWarning", sev="Low", impl_id="other", timestamp="2024-05-01T12:00:00.000Z"),
        wire_error("generic/CommunicationFault", "radio", sev="Low", timestamp="2024-05-01T13:00:00.000Z"),
    ]
    for e in errors:
        assert db.add(record_from_wire(e))
    return db, errors


def handles(result: list[dict[str, Any]]) -> list[str]:
    return [e["uuid"] for e in result]


def test_every_filter(tmp_path: Path, check_result) -> None:
    db, errors = filled_db(tmp_path / "h.db")
    u = [e["uuid"] for e in errors]
    assert db.clear(record_from_wire(errors[1])) == 1
    q = db.query
    assert handles(q({})) == u
    assert handles(q({"state_filter": "Active"})) == [u[0], u[2], u[3]]
    assert handles(q({"state_filter": "ClearedByModule"})) == [u[1]]
    assert handles(q({"state_filter": "ClearedByReboot"})) == []
    assert handles(q({"origin_filter": {"module_id": "board", "implementation_id": "other"}})) == [u[2]]
    assert handles(q({"origin_filter": {"module_id": "nobody", "implementation_id": "main"}})) == []
    assert handles(q({"type_filter": "generic/CommunicationFault"})) == [u[1], u[3]]
    assert handles(q({"severity_filter": "HIGH_GE"})) == [u[0]]
    assert handles(q({"severity_filter": "MEDIUM_GE"})) == [u[0], u[1]]
    assert handles(q({"severity_filter": "LOW_GE"})) == u
    period = {"timestamp_from": "2024-05-01T11:00:00Z", "timestamp_to": "2024-05-01T14:00:00+02:00"}
    assert handles(q({"timeperiod_filter": period})) == [u[1], u[2]], "inclusive bounds, offsets honoured"
    assert handles(q({"handle_filter": u[3]})) == [u[3]]
    assert handles(q({"handle_filter": "unknown"})) == []
    both = {"state_filter": "Active", "type_filter": "generic/CommunicationFault", "severity_filter": "LOW_GE"}
    assert handles(q(both)) == [u[3]]
    check_result("error_history", "get_errors", q({}))
    db.close()


def test_error_objects(tmp_path: Path, check_result) -> None:
    db = ErrorDatabase(tmp_path / "h.db")
    db.add(record_from_wire(wire_error(handle="h-1", sub_type="s", description="", message="")))
    db.add(record_from_wire(wire_error(handle="h-2", description="D", message="M")))
    result = db.query({})
    assert result[0] == {
        "type": "generic/CommunicationFault",
        "sub_type": "s",
        "description": "(no description)",
        "message": "(no message)",
        "severity": "Low",
        "origin": {"module_id": "board", "implementation_id": "main"},
        "timestamp": "2024-05-01T10:00:00.000Z",
        "uuid": "h-1",
        "state": "Active",
    }
    assert (result[1]["description"], result[1]["message"]) == ('"D"', '"M"')
    check_result("error_history", "get_errors", result)
    db.close()


def test_clear_matches_origin_type_and_sub_type_of_active_errors(tmp_path: Path) -> None:
    db, errors = filled_db(tmp_path / "h.db")
    other_sub = {**errors[1], "sub_type": "radio", "origin": {"module_id": "board", "implementation_id": "main"}}
    assert db.clear(record_from_wire(other_sub)) == 1
    assert [e["state"] for e in db.query({})] == ["Active", "Active", "Active", "ClearedByModule"]
    assert db.clear(record_from_wire(other_sub)) == 0, "a second clear of the same error changes nothing"
    # A clear of an error raised before the history ran is kept as a cleared error.
    early = wire_error("generic/VendorError", handle="early")
    assert db.clear(record_from_wire(early)) == 1
    assert db.query({"handle_filter": "early"})[0]["state"] == "ClearedByModule"
    db.close()


def test_reboot_clears_what_was_active_and_keeps_the_rest(tmp_path: Path) -> None:
    db, errors = filled_db(tmp_path / "h.db")
    db.clear(record_from_wire(errors[0]))
    db.close()
    again = ErrorDatabase(tmp_path / "h.db")
    assert again.clear_by_reboot() == 3
    assert [e["state"] for e in again.query({})] == [
        "ClearedByModule",
        "ClearedByReboot",
        "ClearedByReboot",
        "ClearedByReboot",
    ]
    assert not again.add(record_from_wire(errors[0])), "a known uuid is not added twice"
    assert again.clear_by_reboot() == 0
    again.close()


# -- over the wire ----------------------------------------------------------------------------------------


def stack_config(db: Path) -> dict[str, Any]:
    return {
        "active_modules": {
            "history": {
                "module": "ErrorHistory",
                "config_implementation": {"error_history": {"database_path": str(db)}},
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {"history": [{"module_id": "history", "implementation_id": "error_history"}]},
            },
        }
    }


def publish(probe: Probe, kind: str, error: dict[str, Any]) -> None:
    """Raise or clear an error with a chosen timestamp on the probe's own error topic."""
    assert probe.bus is not None
    topic = probe.topics.error(probe.id, error["origin"]["implementation_id"], error["type"])
    probe.bus.publish(topic, wire.envelope(kind, error))


async def get_errors(probe: Probe, **filters: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await probe.call("history", "get_errors", {"filters": filters})
    return result


def test_history_over_the_wire_and_across_kill_9(make_stack, run_probe, tmp_path: Path) -> None:
    db = tmp_path / "history" / "errors.db"
    stack, prefix = make_stack(stack_config(db))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    raised: list[dict[str, Any]] = []

    async def scenario(probe: Probe) -> None:
        raised.append(probe.raise_error("none", "evse_board_support/DiodeFault", "", "diode shorted", "High"))
        raised.append(probe.raise_error("none", "generic/CommunicationFault", "bus", "no answer", "Medium"))
        raised.append(probe.raise_error("none", "generic/VendorWarning", "", "", "Low"))
        old = wire_error("generic/VendorError", module_id="probe", impl_id="none", timestamp="2001-01-01T00:00:00.000Z")
        old["origin"].pop("mapping")
        publish(probe, wire.RAISE_ERROR, old)
        raised.append(old)
        u = [e["uuid"] for e in raised]

        everything = await poll(lambda: get_errors(probe), lambda r: len(r) == 4)
        assert handles(everything) == u
        assert everything[0] == {
            "type": "evse_board_support/DiodeFault",
            "sub_type": "",
            "description": "(no description)",  # the probe sends none
            "message": "diode shorted",
            "severity": "High",
            "origin": {"module_id": "probe", "implementation_id": "none"},
            "timestamp": raised[0]["timestamp"],
            "uuid": u[0],
            "state": "Active",
        }
        assert everything[2]["message"] == "(no message)"

        probe.clear_error(raised[1])
        cleared = await poll(lambda: get_errors(probe, state_filter="ClearedByModule"), lambda r: len(r) == 1)
        assert handles(cleared) == [u[1]]
        assert handles(await get_errors(probe, state_filter="Active")) == [u[0], u[2], u[3]]
        origin = {"module_id": "probe", "implementation_id": "none"}
        assert handles(await get_errors(probe, origin_filter=origin)) == u
        assert await get_errors(probe, origin_filter={"module_id": "probe", "implementation_id": "elsewhere"}) == []
        assert handles(await get_errors(probe, type_filter="generic/CommunicationFault")) == [u[1]]
        assert handles(await get_errors(probe, severity_filter="HIGH_GE")) == [u[0]]
        assert handles(await get_errors(probe, severity_filter="MEDIUM_GE")) == [u[0], u[1]]
        assert handles(await get_errors(probe, severity_filter="LOW_GE")) == u
        period = {"timestamp_from": "2000-12-31T00:00:00Z", "timestamp_to": "2001-01-02T00:00:00Z"}
        assert handles(await get_errors(probe, timeperiod_filter=period)) == [u[3]]
        recent = {"timestamp_from": raised[0]["timestamp"], "timestamp_to": "2999-01-01T00:00:00Z"}
        assert handles(await get_errors(probe, timeperiod_filter=recent)) == u[:3]
        assert handles(await get_errors(probe, handle_filter=u[2])) == [u[2]]
        assert handles(await get_errors(probe, state_filter="Active", severity_filter="MEDIUM_GE")) == [u[0]]
        os.kill(stack.pid, signal.SIGKILL)

    run_probe(prefix, scenario)
    assert stack.wait() == -signal.SIGKILL

    again, prefix2 = make_stack(stack_config(db), name="config2.yaml")
    again.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def after_reboot(probe: Probe) -> list[dict[str, Any]]:
        return await get_errors(probe)

    states = [(e["uuid"], e["state"]) for e in run_probe(prefix2, after_reboot)]
    assert states == [
        (raised[0]["uuid"], "ClearedByReboot"),
        (raised[1]["uuid"], "ClearedByModule"),
        (raised[2]["uuid"], "ClearedByReboot"),
        (raised[3]["uuid"], "ClearedByReboot"),
    ]
    assert again.stop() == 0
