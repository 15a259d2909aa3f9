# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""SimMeter: a pymodbus RTU client reads the simulated SDM630 over the pty pair and sees the board's values."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from everest_bsp.hal.gpio import LineSettings, request_lines
from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.sim import meter
from everest_bsp.sim.board import BoardConfig, MeterValues, TarragonBoardSim
from everest_bsp.sim.meter import SimMeter, decode
from everest_bsp.sim.tarragon_tree import CP_PWM_DEVICE, TarragonTree

MS = 1_000_000
MODEL = Path(__file__).resolve().parents[4] / "shared/reference/everest/modules/GenericPowermeter/models"


@pytest.fixture
def link(tmp_path: Path) -> Path:
    return tmp_path / "dev" / "ttyMeter"


@pytest.fixture
def board(tree: TarragonTree) -> Iterator[TarragonBoardSim]:
    sim = TarragonBoardSim(tree, BoardConfig(noise_counts=0))
    yield sim
    sim.close()


async def read(port: Path, register: int, count: int = 2, device_id: int = 1) -> list[int]:
    from pymodbus import FramerType
    from pymodbus.client import AsyncModbusSerialClient

    client = AsyncModbusSerialClient(str(port), framer=FramerType.RTU, baudrate=9600, timeout=2, retries=0)
    await client.connect()
    try:
        response = await client.read_input_registers(register - 30001, count=count, device_id=device_id)
        assert not response.isError(), response
        return list(response.registers)
    finally:
        client.close()


def value(port: Path, register: int) -> float:
    return decode(asyncio.run(read(port, register)))


def test_the_board_charging_as_the_meter_reports_it(tree: TarragonTree, board: TarragonBoardSim, link: Path) -> None:
    lines = request_lines(
        tree.root, "test", {"CP_INVERT": LineSettings(output=True), "RELAY_1_ENABLE": LineSettings(output=True)}
    )
    pwm = SysfsPwm.open(tree.root, CP_PWM_DEVICE, 0)
    sim_meter = SimMeter(board.meter_values, link).start()
    try:
        assert value(link, 30001) == 230.0
        assert value(link, 30007) == 0.0
        assert value(link, 30071) == 50.0
        board.inject("car_state", "C")
        board.inject("car_max_current_A", 10.0)
        pwm.configure(1_000_000, 500_000)
        pwm.enable(True)
        lines.set_many({"CP_INVERT": True, "RELAY_1_ENABLE": True})
        t = time.monotonic_ns()
        board.step(t + 20 * MS)
        board.step(t + 20 * MS + 360 * 1_000_000_000)  # 6 minutes at 3 x 230 V x 10 A = 690 Wh
        assert [value(link, r) for r in (30007, 30009, 30011)] == [10.0, 10.0, 10.0]
        assert value(link, 30013) == pytest.approx(2300.0)
        assert value(link, 30053) == pytest.approx(6900.0)
        assert value(link, 30073) == pytest.approx(0.69, rel=1e-6)  # kWh
        assert value(link, 30347) == pytest.approx(0.23, rel=1e-6)
        assert sim_meter.reads >= 8
    finally:
        sim_meter.stop()
        lines.release()
    assert not link.exists() and not link.is_symlink(), "the client's link goes with the meter"


def test_registers_follow_the_eastron_model() -> None:
    """Every register GenericPowermeter's SDM630-V2 model reads is in the bank, with the right content."""
    model_file = MODEL / "Eastron_SDM630-V2.yaml"
    if not model_file.is_file():
        pytest.skip(f"no reference model at {model_file}")
    model = yaml.safe_load(model_file.read_text())
    values = MeterValues((231.0, 232.0, 233.0), (1.0, 2.0, 3.0), (231.0, 464.0, 699.0), (1000.0, 2000.0, 3000.0), 49.9)
    regs = meter.register_values(values)
    expect = {
        "energy_Wh_import": (6.0, (1.0, 2.0, 3.0)),  # kWh; the model multiplies by 1000
        "energy_Wh_export": (0.0, (0.0, 0.0, 0.0)),
        "power_W": (1394.0, (231.0, 464.0, 699.0)),
        "voltage_V": (None, (231.0, 232.0, 233.0)),
        "reactive_power_VAR": (0.0, (0.0, 0.0, 0.0)),
        "current_A": (None, (1.0, 2.0, 3.0)),
        "frequency_Hz": (49.9, None),
    }
    for name, (total, phases) in expect.items():
        entry = model[name]
        if total is not None:
            assert regs[entry["start_register"]] == pytest.approx(total), name
        if phases is not None:
            for i, phase in enumerate(("L1", "L2", "L3")):
                assert regs[entry[phase]["start_register"]] == pytest.approx(phases[i]), f"{name} {phase}"
    words = meter.encode(regs)
    assert decode(words[72:74]) == pytest.approx(6.0), "register 30073 is address 72, high word first"


def test_only_input_registers_of_the_configured_id_answer(board: TarragonBoardSim, link: Path) -> None:
    from pymodbus import FramerType
    from pymodbus.client import AsyncModbusSerialClient
    from pymodbus.exceptions import ModbusIOException

    async def scenario() -> None:
        client = AsyncModbusSerialClient(str(link), framer=FramerType.RTU, baudrate=9600, timeout=0.3, retries=0)
        await client.connect()
        try:
            holding = await client.read_holding_registers(0, count=2, device_id=7)
            assert holding.isError() and holding.exception_code == 1  # illegal function
            inputs = await client.read_input_registers(0, count=2, device_id=7)
            assert decode(list(inputs.registers)) == 230.0
            with pytest.raises(ModbusIOException, match="No response"):  # another id: the meter stays silent
                await client.read_input_registers(0, count=2, device_id=1)
        finally:
            client.close()

    sim_meter = SimMeter(board.meter_values, link, device_id=7).start()
    try:
        asyncio.run(scenario())
    finally:
        sim_meter.stop()
