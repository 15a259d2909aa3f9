# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""TarragonSimulator in a stack: a probe drives the car side, the test plays the SoC on the board's tree."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from everest_bsp.hal.gpio import LineRequest, LineSettings, request_lines
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.sim import physics
from everest_bsp.sim.meter import decode
from everest_bsp.sim.tarragon_tree import ADC_DEVICE, CP_PWM_DEVICE
from everest_bsp.tarragon import pp
from everest_py.testing import Probe

SIM = "sim"
OUTPUTS = ("CP_INVERT", "CP_POSITIVE_PEAK_RST", "CP_NEGATIVE_PEAK_RST", "RELAY_1_ENABLE", "RELAY_2_ENABLE")


def config(root: Path, **sim: Any) -> dict[str, Any]:
    return {
        "active_modules": {
            SIM: {"module": "TarragonSimulator", "config_module": {"hal_root": str(root), **sim}},
            "probe": {
                "module": "ProbeModule",
                "connections": {"car": [{"module_id": SIM, "implementation_id": "ev_board_support"}]},
            },
        }
    }


class Soc:
    """The SoC's side of the simulated board, as a driver holds it (from this test's process)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lines: LineRequest = request_lines(root, "test", {n: LineSettings(output=True) for n in OUTPUTS})
        self.pwm = SysfsPwm.open(root, CP_PWM_DEVICE, 0)

    def pilot(self, duty_percent: float | None) -> None:
        if duty_percent is None:
            self.lines.set("CP_INVERT", False)
            return
        self.pwm.configure(1_000_000, round(10_000 * duty_percent))
        self.pwm.enable(True)
        self.lines.set("CP_INVERT", True)

    def raw(self, channel: str) -> int:
        with AdcChannel.open(self.root, ADC_DEVICE, channel) as adc:
            return adc.read_raw()

    def cp_mV(self) -> tuple[int, int]:
        return tuple(round(physics.cp_volts(self.raw(c)) * 1000) for c in ("voltage2", "voltage3"))  # type: ignore[return-value]

    def level(self, line: str) -> bool:
        with request_lines(self.root, "test-in", {line: LineSettings()}) as req:
            return req.get(line)


class Car:
    """The probe's view of the car side: its commands, events and measurements."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.events: list[str] = []
        self.duty: float | None = None
        self.ampacity: str | None = None
        events = probe.subscribe_var("car", "bsp_event")
        measurements = probe.subscribe_var("car", "bsp_measurement")
        self._tasks = [
            asyncio.ensure_future(self._drain(events, lambda v: self.events.append(v["event"]))),
            asyncio.ensure_future(self._drain(measurements, self._measured)),
        ]

    def _measured(self, value: dict[str, Any]) -> None:
        self.duty = value["cp_pwm_duty_cycle"]
        self.ampacity = value["proximity_pilot"]["ampacity"]

    @staticmethod
    async def _drain(queue: asyncio.Queue[Any], sink: Callable[[Any], None]) -> None:
        while True:
            sink(await queue.get())

    async def call(self, cmd: str, **args: Any) -> Any:
        return await self.probe.call("car", cmd, args)

    def inject(self, prefix: str, payload: str) -> None:
        assert self.probe.bus is not None
        self.probe.bus.publish(f"ext_{prefix}/everest_external/tarragon_sim/{SIM}/inject", payload)

    def close(self) -> None:
        for t in self._tasks:
            t.cancel()


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.005)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "board"


@pytest.fixture
def soc(root: Path) -> Iterator[Callable[[], Soc]]:
    made: list[Soc] = []

    def make() -> Soc:
        s = Soc(root)
        made.append(s)
        return s

    yield make
    for s in made:
        s.lines.release()


def run(make_stack: Any, run_probe: Any, cfg: dict[str, Any], scenario: Any) -> str:
    stack, prefix = make_stack(cfg)
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def main(probe: Probe) -> None:
        car = Car(probe)
        try:
            await scenario(car, prefix)
        finally:
            car.close()

    try:
        run_probe(prefix, main)
    except BaseException:
        print(stack.log())
        raise
    assert stack.stop() == 0
    return stack.log()


def test_the_car_on_the_pilot_as_the_soc_sees_it(make_stack, run_probe, root: Path, soc) -> None:
    async def scenario(car: Car, prefix: str) -> None:
        s = soc()
        await until(lambda: car.duty == 0.0 and car.ampacity == "None", 3.0)  # measurements repeat every second
        await car.call("enable", value=True)
        await car.call("set_cp_state", cp_state="B")
        s.pilot(100)
        await until(lambda: abs(s.cp_mV()[0] - 9000) < 60 and abs(s.cp_mV()[1] - 9000) < 60)
        await until(lambda: car.events[-1:] == ["B"])
        await until(lambda: car.ampacity == "A_32")  # the car's cable is in the socket: own publication
        assert pp.ampacity(s.raw("voltage5")) == "A_32"
        s.pilot(5)
        await until(lambda: car.duty == 5.0)
        assert abs(s.cp_mV()[1] + 12000) < 60
        await car.call("diode_fail", value=True)
        await until(lambda: abs(s.cp_mV()[1] + 9000) < 60)
        await car.call("set_cp_state", cp_state="E")
        await until(lambda: abs(s.cp_mV()[0]) < 60 and car.events[-1:] == ["E"])
        await car.call("set_cp_state", cp_state="B")
        s.pilot(0)
        await until(lambda: car.events[-1:] == ["F"] and car.duty == 0.0)
        s.pilot(None)
        await until(lambda: car.events[-1:] == ["E"] and abs(s.cp_mV()[0]) < 60)
        await car.call("enable", value=False)
        await until(lambda: car.events[-1:] == ["A"] and car.ampacity == "None")

    run(make_stack, run_probe, config(root, pp_ampacity_A=32), scenario)
    assert not root.exists(), "the tree goes with the stack"


def test_power_relays_rcm_and_the_meter(make_stack, run_probe, root: Path, tmp_path: Path, soc) -> None:
    port = tmp_path / "ttyMeter"

    async def read(register: int) -> float:
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusSerialClient

        client = AsyncModbusSerialClient(str(port), framer=FramerType.RTU, baudrate=9600, timeout=2, retries=0)
        await client.connect()
        try:
            response = await client.read_input_registers(register - 30001, count=2, device_id=3)
            return decode(list(response.registers))
        finally:
            client.close()

    async def scenario(car: Car, prefix: str) -> None:
        s = soc()
        assert s.level("RELAY_1_SENSE") is True, "nc contact of an open relay"
        await car.call("set_cp_state", cp_state="C")
        await car.call("set_ac_max_current", current=10.0)
        await car.call("set_three_phases", three_phases=False)
        s.pilot(50)
        s.lines.set("RELAY_1_ENABLE", True)
        await until(lambda: "PowerOn" in car.events)
        assert s.level("RELAY_1_SENSE") is False
        assert await read(30007) == 10.0
        assert await read(30009) == 0.0, "the car draws on one phase"
        assert await read(30053) == pytest.approx(2300.0)
        await car.call("allow_power_on", value=False)
        await until_async(lambda: read(30007), 0.0)
        s.lines.set("RELAY_1_ENABLE", False)
        await until(lambda: car.events[-1:] == ["PowerOff"])
        assert await read(30073) > 0.0, "energy was counted"

        await car.call("set_rcd_error", rcd_current_mA=30.0)
        await until(lambda: s.level("DIGITAL_IN_2") is False, 2.0)  # active-low RCM output
        await car.call("set_rcd_error", rcd_current_mA=0.0)
        await until(lambda: s.level("DIGITAL_IN_2") is True, 2.0)

    cfg = config(
        root,
        relay_1_feedback="nc",
        rcm_active_low=True,
        meter_port=str(port),
        meter_device_id=3,
    )
    run(make_stack, run_probe, cfg, scenario)
    assert not port.exists() and not port.is_symlink()


async def until_async(read: Callable[[], Any], expected: float, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while await read() != expected:
            await asyncio.sleep(0.02)


def test_injections_over_external_mqtt(make_stack, run_probe, root: Path, soc) -> None:
    async def scenario(car: Car, prefix: str) -> None:
        s = soc()
        car.inject(prefix, json.dumps({"fault": "rcm", "value": True}))
        await until(lambda: s.level("DIGITAL_IN_2") is True)
        car.inject(prefix, "{not json")
        car.inject(prefix, json.dumps({"fault": "warp_drive", "value": 1}))
        car.inject(prefix, json.dumps({"fault": "pp_ampacity", "value": 13}))
        car.inject(prefix, json.dumps({"fault": "cable_plugged", "value": True}))
        await until(lambda: car.ampacity == "A_13")
        assert pp.ampacity(s.raw("voltage5")) == "A_13"
        car.inject(prefix, json.dumps({"fault": "lock_position", "value": "locked"}))
        await until(lambda: s.raw("voltage0") < 600)

    log = run(make_stack, run_probe, config(root), scenario)
    ignored = [line for line in log.splitlines() if "ignored" in line]
    assert len(ignored) == 2, ignored
    assert "not JSON" in ignored[0] and "unknown injection 'warp_drive'" in ignored[1]


def test_a_stale_tree_is_replaced_and_anything_else_refused(make_stack, run_probe, root: Path, soc) -> None:
    (root / "dev").mkdir(parents=True)
    (root / "dev" / "gpiochip0").write_text("left by a killed run")

    async def scenario(car: Car, prefix: str) -> None:
        s = soc()
        s.pilot(100)
        await until(lambda: abs(s.cp_mV()[0] - 12000) < 60)

    run(make_stack, run_probe, config(root), scenario)

    root.mkdir()
    (root / "precious.txt").write_text("not a board")
    stack, _ = make_stack(config(root), name="refused.yaml")
    stack.start(wait=False)
    assert stack.wait(30) != 0
    assert "not a simulated board, left alone" in stack.log()
    assert (root / "precious.txt").exists()


def test_config_values_reach_the_board(make_stack, run_probe, root: Path, soc) -> None:
    async def scenario(car: Car, prefix: str) -> None:
        s = soc()
        await until(lambda: s.level("DIGITAL_IN_4") is False)  # active-low: a 3-phase grid
        assert s.level("RELAY_2_SENSE") is False
        s.lines.set("RELAY_2_ENABLE", True)
        t = time.monotonic()
        await until(lambda: s.level("RELAY_2_SENSE") is True)
        assert time.monotonic() - t >= 0.1, "pull-in of 100 ms"  # a lower bound only: never flaky

    cfg = config(
        root,
        relay_2_feedback="no",
        relay_pull_in_ms=100,
        grid_phase_count_gpio_line_name="DIGITAL_IN_4",
        grid_phase_count_active_low=True,
        plug_lock=False,
    )
    run(make_stack, run_probe, cfg, scenario)
