# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""GenericPowermeter: model files, decoding, faults, transactions; a simulated SDM630 end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from everest_bsp.modules.generic_powermeter.meter import Change, FaultState, Meter, ReadFailed, finite
from everest_bsp.modules.generic_powermeter.model import MODELS_DIR, find_model, load_model
from everest_bsp.modules.generic_powermeter.module import MeterConfig
from everest_bsp.modules.generic_powermeter.registers import Read, decode, plan, reading
from everest_bsp.modules.generic_powermeter.transactions import TransactionBook
from everest_py.errors import ConfigError
from everest_py.framework import wire
from everest_py.testing import Probe

from .modbus_peer import SDM630, ModbusPeer, PtyPair, SilentDevice, float_words, meter_stack, sdm630_bank

MODULE_DIR = MODELS_DIR.parent

EXPECTED = {
    "energy_Wh_import": {"total": 12345670.0, "L1": 4000100.0, "L2": 4000250.0, "L3": 4345320.0},
    "energy_Wh_export": {"total": 1500.0, "L1": 500.0, "L2": 250.0, "L3": 750.0},
    "power_W": {"total": 7323.2, "L1": 3686.1, "L2": 3694.6, "L3": -57.5},
    "VAR": {"total": 20.5, "L1": 10.0, "L2": -20.0, "L3": 30.5},
    "voltage_V": {"L1": 230.1, "L2": 231.2, "L3": 229.9},
    "current_A": {"L1": 16.02, "L2": 15.98, "L3": 0.25},
    "frequency_Hz": {"L1": 50.02},
}


# -- manifest and model files --------------------------------------------------------------------------------


def test_config_dataclass_matches_the_manifest() -> None:
    keys = yaml.safe_load((MODULE_DIR / "manifest.yaml").read_text())["provides"]["main"]["config"]
    assert [f.name for f in dataclasses.fields(MeterConfig)] == list(keys)


@pytest.mark.parametrize(
    ("name", "values", "reads", "registers"),
    [
        ("Eastron_SDM630-V2", 23, 6, 46),
        ("Eastron_SDM72DM-V2", 13, 3, 26),
        ("Eastron_SDM72DM", 3, 2, 6),
        ("Eastron_SDM230", 6, 4, 12),
        ("Klefr_693x-694x", 23, 5, 46),
        ("test_dummy", 1, 2, 2),
    ],
)
def test_shipped_models(name: str, values: int, reads: int, registers: int) -> None:
    p = plan(load_model(find_model(name)), 30001)
    assert (len(p.fields), len(p.reads), p.registers) == (values, reads, registers)


def test_addresses_follow_everest() -> None:
    """Input registers are sent as number - base, holding registers as written."""
    assert plan(load_model(find_model("test_dummy")), 30001).reads == (Read(3, 40002, 1), Read(4, 10002, 1))
    sdm = plan(load_model(find_model("Eastron_SDM630-V2")), 30001)
    assert sdm.reads[0] == Read(4, 0, 18)  # 30001..30018: voltages, currents, powers
    assert sdm.reads[-1] == Read(4, 346, 12)  # 30347..30358: energies per phase


def write_model(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    return path


GOOD = """
energy_Wh_import:
  start_register: 30073
  function_code_start_reg: 4
  num_registers: 2
  multiplier: 1000.0
  exponent_register: 0
  function_code_exp_reg: 4
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD.replace("function_code_start_reg: 4", "function_code_start_reg: 6"),
         "energy_Wh_import.function_code_start_reg: must be 3 (holding registers) or 4 (input registers), not 6"),
        (GOOD.replace("  multiplier: 1000.0\n", ""), "energy_Wh_import.multiplier: missing"),
        (GOOD.replace("num_registers: 2", "num_registers: two"),
         "energy_Wh_import.num_registers: must be an integer from 0 to 4, not 'two'"),
        (GOOD + "power_W:\n  L1:\n    num_registers: 2\n    start_register: 30013\n",
         "power_W.L1.function_code_start_reg: missing"),
        (GOOD + "  L4: {}\n", "energy_Wh_import.L4: unknown key"),
        (GOOD + "temperature_C: {}\n", "temperature_C: unknown quantity"),
        (GOOD.replace("num_registers: 2", "num_registers: 1\n  data_type: float32"),
         "energy_Wh_import.data_type: float32 takes 2 register(s), num_registers is 1"),
        (GOOD.replace("30073", "0"), "energy_Wh_import.start_register: must be an integer from 1 to 65535, not 0"),
        (GOOD.replace("num_registers: 2", "num_registers: 0"),
         "energy_Wh_import: reads no register; the powermeter interface requires the imported energy"),
        (GOOD + "frequency_Hz:\n  L2: {start_register: 30071, function_code_start_reg: 4, num_registers: 2,"
                " multiplier: 1, exponent_register: 0, function_code_exp_reg: 4}\n",
         "frequency_Hz: the powermeter interface needs L1 (the first level or L1)"),
        ("energy_Wh_import: [1, 2\n", "line 2: not valid YAML"),
        ("- a list\n", "must be a mapping of quantities"),
    ],
)  # fmt: skip
def test_malformed_model_names_file_and_key(tmp_path: Path, text: str, problem: str) -> None:
    path = write_model(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_model(path)
    assert any(issue.startswith(f"{path}: {problem}") for issue in err.value.issues), err.value.issues


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    path = write_model(tmp_path, GOOD.replace("function_code_start_reg: 4", "function_code_start_reg: 1") + "x: 1\n")
    with pytest.raises(ConfigError) as err:
        load_model(path)
    assert len(err.value.issues) == 3  # function code, unknown quantity, no imported energy left


def test_finding_models(tmp_path: Path) -> None:
    assert find_model("Eastron_SDM630-V2") == MODELS_DIR / "Eastron_SDM630-V2.yaml"
    path = write_model(tmp_path, GOOD)
    assert find_model(str(path)) == path  # an absolute path: a model outside the (read-only) package
    for name, text in (
        ("../x", "must be a plain name"),
        ("nonesuch", "no model 'nonesuch'"),
        (str(tmp_path / "gone.yaml"), "does not exist"),
    ):
        with pytest.raises(ConfigError, match=text):
            find_model(name)


def test_input_register_below_the_base_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"energy_Wh_import\.start_register: register 30073 is not on the wire"):
        plan(load_model(write_model(tmp_path, GOOD)), 40001)


# -- decoding ----------------------------------------------------------------------------------------------------


def test_decode() -> None:
    assert decode(list(float_words(230.1)), "float32") == 230.1
    assert decode(list(reversed(float_words(-57.5))), "float32", "little") == -57.5
    assert decode([0xFFFE], "uint16") == 65534
    assert decode([0xFFFE], "int16") == -2
    assert decode([0x0001, 0x0002], "uint32") == 65538
    assert decode([0x0002, 0x0001], "uint32", "little") == 65538
    assert decode([0xFFFF, 0xFFFF], "int32") == -1
    assert decode([0, 0, 0x0001, 0x0000], "uint64") == 65536


def test_reading_with_exponent_and_int_registers(tmp_path: Path) -> None:
    """test_dummy: one holding register * 0.001 * 10^(signed input register)."""
    p = plan(load_model(find_model("test_dummy")), 30001)
    words = {(3, 40002): 12345, (4, 10002): 0xFFFF}  # exponent -1
    assert reading(p, words, "m", "t") == {"timestamp": "t", "meter_id": "m", "energy_Wh_import": {"total": 1.2345}}
    words[(4, 10002)] = 3
    assert reading(p, words, "m", "t")["energy_Wh_import"] == {"total": 12345.0}


def test_total_is_the_sum_of_the_phases_when_the_meter_has_none(tmp_path: Path) -> None:
    phase = (
        "{start_register: %d, function_code_start_reg: 4, num_registers: 2, multiplier: 1,"
        " exponent_register: 0, function_code_exp_reg: 4}"
    )
    text = f"power_W:\n  L1: {phase % 30013}\n  L2: {phase % 30015}\n  L3: {phase % 30017}\n"
    p = plan(load_model(write_model(tmp_path, GOOD + text)), 30001)
    words: dict[tuple[int, int], int] = {}
    for address, value in ((72, 1.0), (12, 100.5), (14, 200.25), (16, 300.0)):
        words[(4, address)], words[(4, address + 1)] = float_words(value)
    assert reading(p, words, "m", "t")["power_W"] == {"L1": 100.5, "L2": 200.25, "L3": 300.0, "total": 600.75}


def test_values_that_are_not_finite_are_left_out() -> None:
    value = {
        "timestamp": "t",
        "energy_Wh_import": {"total": 1.0, "L1": float("nan")},
        "power_W": {"total": float("inf"), "L1": 2.0},
        "frequency_Hz": {"L1": float("nan"), "L2": 50.0},
        "voltage_V": {"L1": 230.0, "L2": float("nan")},
    }
    assert finite(value) == {"timestamp": "t", "energy_Wh_import": {"total": 1.0}, "voltage_V": {"L1": 230.0}}


def test_poll_stops_at_the_first_failed_read() -> None:
    meter = Meter(plan(load_model(find_model("Eastron_SDM630-V2")), 30001), "m")
    asked: list[Read] = []

    async def read(r: Read) -> list[int]:
        asked.append(r)
        if len(asked) == 2:
            raise ReadFailed("the hub answered Timeout")
        return [0] * r.count

    result = asyncio.run(meter.poll(read, lambda: "t"))
    assert result.value is None
    assert result.problem == "reading 6 input register(s) at 24: the hub answered Timeout"
    assert len(asked) == 2 and meter.last is None


def test_fault_is_raised_after_two_failed_polls_and_cleared_once() -> None:
    fault = FaultState()
    steps = [fault.update(ok) for ok in (True, False, True, False, False, False, False, True, True)]
    assert steps == [None, None, None, None, Change.RAISE, None, None, Change.CLEAR, None]


def test_transactions_answer_not_supported_with_the_energy() -> None:
    book = TransactionBook()
    start = book.start({"transaction_id": "t1"}, {"energy_Wh_import": {"total": 1000.0}}, "2024-01-01T00:00:00.000Z")
    assert start == {
        "status": "NOT_SUPPORTED",
        "error": "this meter signs no readings; transaction t1 noted at 1000.0 Wh",
    }
    stop = book.stop("t1", {"energy_Wh_import": {"total": 1065.5}})
    assert stop["status"] == "NOT_SUPPORTED"
    assert stop["error"].endswith("t1: 1000.0 Wh at start, 1065.5 Wh at stop, 65.5 Wh imported")
    assert book.stop("t1", None)["error"].endswith("no transaction t1 was started")
    book.start({"transaction_id": "a"}, None, "x")
    book.start({"transaction_id": "b"}, None, "x")
    assert book.stop("", None)["error"].endswith("2 open transaction(s) dropped")
    assert book.open == {}


# -- end to end: hub + meter + a pymodbus SDM630 -------------------------------------------------------------------


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[PtyPair, ModbusPeer]]:
    pty = PtyPair(tmp_path).start()
    peer = ModbusPeer(pty.device)
    sdm630_bank(peer, SDM630)
    try:
        yield pty, peer.start()
    finally:
        peer.stop()
        pty.stop()


async def next_reading(queue: asyncio.Queue[Any], import_Wh: float | None = None, timeout_s: float = 5.0) -> Any:
    """The next published value (with that imported energy, if given)."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = await queue.get()
            if import_Wh is None or value["energy_Wh_import"]["total"] == import_Wh:
                return value


def errors_of(probe: Probe) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    assert probe.bus is not None

    def on_error(topic: str, payload: bytes) -> None:
        msg = json.loads(payload)
        seen.append((msg["msg_type"], msg["data"]))

    probe.bus.subscribe(probe.topics.error("meter", "main", "generic/CommunicationFault"), on_error)
    return seen


async def wait_for(cond: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_sdm630_readings_transactions_and_link_failures(make_stack, run_probe, line, check_result) -> None:
    pty, peer = line
    stack, prefix = make_stack(meter_stack(pty.host))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario(probe: Probe) -> None:
        readings = probe.subscribe_var("powermeter", "powermeter")
        errors = errors_of(probe)
        value = await next_reading(readings)
        assert {k: v for k, v in value.items() if k not in ("timestamp", "meter_id")} == EXPECTED
        assert value["meter_id"] == "meter"
        assert value["timestamp"].endswith("Z")

        start = await probe.call("powermeter", "start_transaction", {"value": request("tx-1")})
        check_result("powermeter", "start_transaction", start)
        assert start == {
            "status": "NOT_SUPPORTED",
            "error": "this meter signs no readings; transaction tx-1 noted at 12345670.0 Wh",
        }
        sdm630_bank(peer, {30073: 12346.5})  # 830 Wh later
        await next_reading(readings, import_Wh=12346500.0)
        stop = await probe.call("powermeter", "stop_transaction", {"transaction_id": "tx-1"})
        check_result("powermeter", "stop_transaction", stop)
        assert stop["status"] == "NOT_SUPPORTED"
        assert stop["error"].endswith("tx-1: 12345670.0 Wh at start, 12346500.0 Wh at stop, 830.0 Wh imported")

        # the meter goes silent: one fault after two failed polls, nothing published meanwhile
        peer.stop()
        await wait_for(lambda: errors, timeout_s=6)
        kind, error = errors[0]
        assert kind == wire.RAISE_ERROR
        assert error["type"] == "generic/CommunicationFault"
        assert (
            error["message"] == "the meter does not answer: reading 18 input register(s) at 0: the hub answered Timeout"
        )
        while not readings.empty():
            readings.get_nowait()
        silent = SilentDevice(pty.device)
        try:
            heard = silent.requests()  # what the line buffered since the device went away
            await wait_for(lambda: silent.requests() >= heard + 1)  # one more poll failed: no second raise
        finally:
            silent.close()
        assert readings.empty()
        assert len(errors) == 1
        # it answers again: the fault is cleared once and readings flow
        peer.start()
        await next_reading(readings, import_Wh=12346500.0)
        await wait_for(lambda: len(errors) == 2)
        assert errors[1][0] == wire.CLEAR_ERROR

    run_probe(prefix, scenario)
    assert stack.stop() == 0, stack.log()


def request(tid: str) -> dict[str, Any]:
    return {
        "evse_id": "DE*PNX*E1",
        "transaction_id": tid,
        "identification_status": "ASSIGNED",
        "identification_flags": [],
        "identification_type": "ISO14443",
    }


def test_a_malformed_model_stops_the_stack_naming_file_and_key(make_stack, tmp_path: Path) -> None:
    broken = write_model(tmp_path, GOOD.replace("multiplier: 1000.0", "multiplier: kilo"))
    stack, _ = make_stack(meter_stack(tmp_path / "no-port", model=str(broken)))
    stack.start(wait=False)
    assert stack.wait(30) != 0
    assert f"{broken}: energy_Wh_import.multiplier: must be a number other than 0, not 'kilo'" in stack.log()
