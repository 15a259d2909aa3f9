# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The simulated GPIO chip behaves like the kernel's: names, requests, values, edges, busy, release."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from everest_bsp.hal.errors import LineBusyError, LineNotFoundError
from everest_bsp.hal.gpio import Edge, LineSettings, chip_paths, find_line, request_lines
from everest_bsp.hal.simchip import SimChip, now_ns
from everest_bsp.sim.tarragon_tree import TarragonTree
from everest_py.errors import HardwareError

OUT = LineSettings(output=True)


def test_lines_are_found_by_name_across_chips(tree: TarragonTree) -> None:
    assert [p.name for p in chip_paths(tree.root)] == [f"gpiochip{i}" for i in range(5)]
    assert find_line(tree.root, "CP_INVERT") == (tree.root / "dev/gpiochip0", 13)
    assert find_line(tree.root, "RELAY_2_SENSE") == (tree.root / "dev/gpiochip4", 2)
    with pytest.raises(LineNotFoundError, match="NO_SUCH_LINE"):
        find_line(tree.root, "NO_SUCH_LINE")


def test_chip_identity(tree: TarragonTree) -> None:
    chip = tree.chip("RELAY_1_ENABLE")
    assert (chip.name, chip.label) == ("gpiochip2", "20a4000.gpio")
    assert chip.line_names[12] == "RELAY_1_ENABLE"


def test_output_value_consumer_and_release_fall_back_to_pull(tree: TarragonTree) -> None:
    req = request_lines(tree.root, "R1-S1", {"RELAY_1_ENABLE": LineSettings(output=True, value=True)})
    assert tree.level("RELAY_1_ENABLE") is True, "the initial output value is applied at request time"
    assert tree.consumer("RELAY_1_ENABLE") == "R1-S1"
    req.set("RELAY_1_ENABLE", False)
    assert tree.level("RELAY_1_ENABLE") is False
    req.set("RELAY_1_ENABLE", True)
    req.release()
    assert tree.level("RELAY_1_ENABLE") is False, "a released line is no longer driven"
    assert tree.consumer("RELAY_1_ENABLE") == ""
    changes = [(e.line, e.level) for e in tree.output_events()]
    assert changes == [("RELAY_1_ENABLE", lv) for lv in (True, False, True, False)]


def test_active_low_is_logical(tree: TarragonTree) -> None:
    with request_lines(tree.root, "lock", {"MOTOR_1_DRIVER_IN1_N": LineSettings(output=True, active_low=True)}) as r:
        assert tree.level("MOTOR_1_DRIVER_IN1_N") is True, "inactive active-low output idles high"
        r.set("MOTOR_1_DRIVER_IN1_N", True)
        assert tree.level("MOTOR_1_DRIVER_IN1_N") is False
        assert r.get("MOTOR_1_DRIVER_IN1_N") is True
    with request_lines(tree.root, "fault", {"MOTOR_1_FAULT_N": LineSettings(active_low=True)}) as r:
        assert r.get("MOTOR_1_FAULT_N") is False, "pulled up: no fault"
        tree.set_input("MOTOR_1_FAULT_N", False)
        assert r.get("MOTOR_1_FAULT_N") is True


def test_requests_are_exclusive(tree: TarragonTree) -> None:
    with request_lines(tree.root, "first", {"RELAY_1_ENABLE": OUT}):
        with pytest.raises(LineBusyError):
            request_lines(tree.root, "second", {"RELAY_1_ENABLE": OUT})
        with pytest.raises(LineBusyError):
            request_lines(tree.root, "second", {"RELAY_2_ENABLE": OUT, "RELAY_1_ENABLE": OUT})
        assert tree.consumer("RELAY_2_ENABLE") == "", "a refused request holds nothing"
    with request_lines(tree.root, "second", {"RELAY_1_ENABLE": OUT}):
        assert tree.consumer("RELAY_1_ENABLE") == "second"


def test_outputs_refuse_edges_and_inputs_refuse_set(tree: TarragonTree) -> None:
    with pytest.raises(HardwareError):
        request_lines(tree.root, "x", {"RELAY_1_ENABLE": LineSettings(output=True, edge=Edge.BOTH)})
    with request_lines(tree.root, "x", {"RELAY_1_SENSE": LineSettings()}) as r, pytest.raises(HardwareError):
        r.set("RELAY_1_SENSE", True)


def test_edge_events_with_timestamps(tree: TarragonTree) -> None:
    with request_lines(tree.root, "fb", {"RELAY_1_SENSE": LineSettings(edge=Edge.BOTH)}) as r:
        assert r.wait_edge_events(0.01) is False
        before = now_ns()
        tree.set_input("RELAY_1_SENSE", True)
        tree.set_input("RELAY_1_SENSE", False)
        assert r.wait_edge_events(1.0)
        events = r.read_edge_events()
        assert [e.rising for e in events] == [True, False]
        assert before <= events[0].timestamp_ns <= events[1].timestamp_ns <= now_ns()


def test_edge_filter_and_active_low(tree: TarragonTree) -> None:
    settings = LineSettings(active_low=True, edge=Edge.RISING)
    with request_lines(tree.root, "fb", {"RELAY_2_SENSE": settings}) as r:
        tree.set_input("RELAY_2_SENSE", True)  # logical falling: filtered
        tree.set_input("RELAY_2_SENSE", False)  # logical rising
        assert r.wait_edge_events(1.0)
        assert [(e.line, e.rising) for e in r.read_edge_events()] == [("RELAY_2_SENSE", True)]


def test_debounce_swallows_bounces_and_delays_the_edge(tree: TarragonTree) -> None:
    with request_lines(tree.root, "fb", {"RELAY_1_SENSE": LineSettings(edge=Edge.BOTH, debounce_us=20_000)}) as r:
        start = now_ns()
        for level in (True, False, True, False):  # chatter shorter than the debounce period
            tree.set_input("RELAY_1_SENSE", level)
        assert r.wait_edge_events(0.1) is False, "the level came back: no edge"
        tree.set_input("RELAY_1_SENSE", True)
        assert r.wait_edge_events(1.0)
        (event,) = r.read_edge_events()
        assert event.rising
        assert event.timestamp_ns - start >= 20_000_000, "reported once stable for the debounce period"


def _hold_and_wait(root: str, ready: multiprocessing.synchronize.Event) -> None:  # pragma: no cover - child
    req = request_lines(root, "doomed", {"RELAY_1_ENABLE": LineSettings(output=True, value=True)})
    ready.set()
    time.sleep(60)
    req.release()


def test_a_dead_owner_is_reaped_and_its_output_falls_back(tree: TarragonTree) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_and_wait, args=(str(tree.root), ready))
    child.start()
    try:
        assert ready.wait(10)
        assert tree.level("RELAY_1_ENABLE") is True, "another process's output is visible here"
        with pytest.raises(LineBusyError):
            request_lines(tree.root, "me", {"RELAY_1_ENABLE": OUT})
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    assert tree.reap() == 1
    assert tree.level("RELAY_1_ENABLE") is False
    with request_lines(tree.root, "me", {"RELAY_1_ENABLE": OUT}):
        assert tree.consumer("RELAY_1_ENABLE") == "me"


def test_a_request_over_two_chips(tree: TarragonTree) -> None:
    lines = {"CP_INVERT": OUT, "RELAY_1_ENABLE": OUT, "RELAY_1_SENSE": LineSettings(edge=Edge.RISING)}
    with request_lines(tree.root, "multi", lines) as r:
        r.set_many({"CP_INVERT": True, "RELAY_1_ENABLE": True})
        assert tree.level("CP_INVERT") and tree.level("RELAY_1_ENABLE")
        tree.set_input("RELAY_1_SENSE", True)
        assert r.wait_edge_events(1.0)
        assert [e.line for e in r.read_edge_events()] == ["RELAY_1_SENSE"]


def test_a_plain_file_is_not_a_chip(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/gpiochip0").write_bytes(b"not a chip")
    with pytest.raises(LineNotFoundError):
        find_line(tmp_path, "CP_INVERT")
    with pytest.raises(HardwareError):
        SimChip.open(tmp_path / "dev/gpiochip0")


def test_native_refs_switch_the_same_line(tree: TarragonTree) -> None:
    from everest_bsp._native import lib

    with request_lines(tree.root, "c", {"RELAY_1_ENABLE": OUT}) as r:
        ref = r.native("RELAY_1_ENABLE")
        assert lib.ln_set(ref, 1) == 0
        assert tree.level("RELAY_1_ENABLE") is True
        assert lib.ln_get(ref) == 1
        assert lib.ln_set(ref, 0) == 0
        assert r.get("RELAY_1_ENABLE") is False
