# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The Linux view of a Charge Control C (Tarragon) as a file tree: GPIO chips, IIO ADC, sysfs PWM.

Line names and offsets, the ADC device and the PWM devices follow the Tarragon device tree
(chargebyte-hw.md §2.2); the rotary-switch offsets are not in that digest and are placed on the
second bank.  PWM channels are created already exported (a plain file tree cannot react to a
write to ``export``).  Levels of GPIO lines are physical here; ADC values are raw 12-bit counts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from everest_bsp.hal.simchip import LevelChange, SimChip

ADC_DEVICE = "2198000.adc"
CP_PWM_DEVICE = "20fc000.pwm"  # PWM8: control pilot
DI_PWM_DEVICE = "2084000.pwm"  # PWM2: reference voltage of the digital inputs
FAN_PWM_DEVICE = "20f8000.pwm"  # PWM7: fan
ADC_CHANNELS = 10
PLATFORM = "sys/devices/platform/soc/2000000.bus"

# bank label, {offset: line name}
BANKS: list[tuple[str, dict[int, str]]] = [
    ("209c000.gpio", {13: "CP_INVERT", 19: "MOTOR_1_FAULT_N"}),
    (
        "20a0000.gpio",
        {
            0: "ROTARY_SWITCH_1_1_N",
            1: "ROTARY_SWITCH_1_2_N",
            2: "ROTARY_SWITCH_1_4_N",
            3: "ROTARY_SWITCH_1_8_N",
            4: "ROTARY_SWITCH_2_1_N",
            5: "ROTARY_SWITCH_2_2_N",
            6: "ROTARY_SWITCH_2_4_N",
            7: "ROTARY_SWITCH_2_8_N",
        },
    ),
    (
        "20a4000.gpio",
        {7: "MOTOR_1_DRIVER_IN1_N", 8: "MOTOR_1_DRIVER_IN2", 12: "RELAY_1_ENABLE", 13: "RELAY_2_ENABLE"}
        | {20 + i: f"DIGITAL_OUT_{i + 1}" for i in range(6)},
    ),
    (
        "20a8000.gpio",
        {25: "DIGITAL_IN_1", 26: "DIGITAL_IN_2", 28: "DIGITAL_IN_3", 27: "DIGITAL_IN_4", 20: "DIGITAL_IN_5"}
        | {23: "DIGITAL_IN_6"},
    ),
    ("20ac000.gpio", {10: "CP_POSITIVE_PEAK_RST", 11: "CP_NEGATIVE_PEAK_RST", 3: "RELAY_1_SENSE", 2: "RELAY_2_SENSE"}),
]
# inputs that idle high on the board (active-low signals with pull-ups)
PULLED_UP = ("ROTARY_SWITCH_", "MOTOR_1_FAULT_N")


class TarragonTree:
    """A simulated board's files under ``root``; the simulator's handle on them."""

    def __init__(self, root: Path, chips: list[SimChip]) -> None:
        self.root = root
        self.chips = chips
        self._line_chip = {n: c for c in chips for n in c.line_names if n}
        self._adc_fds: dict[str, int] = {}

    # -- making and opening ------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path) -> TarragonTree:
        """Build the tree in ``root`` (an empty or missing directory)."""
        r = Path(root)
        (r / "dev").mkdir(parents=True, exist_ok=True)
        chips = []
        for n, (label, lines) in enumerate(BANKS):
            names = [lines.get(i, "") for i in range(32)]
            chip = SimChip.create(r / "dev" / f"gpiochip{n}", label, names)
            for name in names:
                if name.startswith(PULLED_UP):
                    chip.set_pull(name, True)
            chips.append(chip)
        adc = r / "sys/bus/iio/devices/iio:device0"
        adc.mkdir(parents=True, exist_ok=True)
        (adc / "name").write_text(ADC_DEVICE + "\n")
        for ch in range(ADC_CHANNELS):
            (adc / f"in_voltage{ch}_raw").write_text("0\n")
        (adc / "in_voltage_scale").write_text("0.805664062\n")
        for n, device in enumerate((DI_PWM_DEVICE, FAN_PWM_DEVICE, CP_PWM_DEVICE)):
            target = r / PLATFORM / device
            target.mkdir(parents=True, exist_ok=True)
            chip_dir = r / "sys/class/pwm" / f"pwmchip{n}"
            (chip_dir / "pwm0").mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(target, chip_dir), chip_dir / "device")
            for attr, value in (("npwm", "1"), ("export", ""), ("unexport", "")):
                (chip_dir / attr).write_text(value + "\n" if value else "")
            for attr, value in (("period", "0"), ("duty_cycle", "0"), ("enable", "0"), ("polarity", "normal")):
                (chip_dir / "pwm0" / attr).write_text(value + "\n")
        return cls(r, chips)

    @classmethod
    def attach(cls, root: str | Path) -> TarragonTree:
        r = Path(root)
        return cls(r, [SimChip.open(p) for p in sorted((r / "dev").glob("gpiochip*"))])

    def close(self) -> None:
        for fd in self._adc_fds.values():
            os.close(fd)
        self._adc_fds.clear()
        for chip in self.chips:
            chip.close()

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TarragonTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- GPIO ------------------------------------------------------------------------------------------
    def chip(self, line: str) -> SimChip:
        try:
            return self._line_chip[line]
        except KeyError:
            raise KeyError(f"the simulated Tarragon has no line '{line}'") from None

    def set_input(self, line: str, level: bool) -> None:
        """Apply a physical level to a line from outside the SoC."""
        self.chip(line).set_pull(line, level)

    def level(self, line: str) -> bool:
        """The physical level of a line (driven by its consumer, or its pull)."""
        return self.chip(line).physical(line)

    def consumer(self, line: str) -> str:
        return self.chip(line).info(line).consumer

    def output_events(self) -> list[LevelChange]:
        events = [e for c in self.chips for e in c.output_events()]
        return sorted(events, key=lambda e: e.timestamp_ns)

    def wait_output(self, timeout_s: float, chips: list[SimChip] | None = None) -> bool:
        """Wait for an output change on ``chips`` (default: all), polling the chips in 1 ms slices."""
        watch = chips or self.chips
        if len(watch) == 1:
            return watch[0].wait_output(timeout_s)
        left = timeout_s
        while True:
            for c in watch:
                if c.wait_output(0):
                    return True
            if left <= 0:
                return False
            watch[0].wait_output(min(0.001, left))
            left -= 0.001

    def reap(self) -> int:
        return sum(c.reap() for c in self.chips)

    # -- IIO ---------------------------------------------------------------------------------------
    def adc_path(self, channel: str) -> Path:
        return self.root / "sys/bus/iio/devices/iio:device0" / f"in_{channel}_raw"

    def write_adc(self, channel: str, raw: int) -> None:
        """Set a raw count (0..4095); one pwrite, readers stop at the first newline."""
        fd = self._adc_fds.get(channel)
        if fd is None:
            fd = self._adc_fds[channel] = os.open(self.adc_path(channel), os.O_WRONLY | os.O_CLOEXEC)
        os.pwrite(fd, f"{max(0, min(4095, int(raw)))}\n".encode(), 0)

    # -- PWM ---------------------------------------------------------------------------------------
    def pwm_dir(self, device: str) -> Path:
        for chip in sorted((self.root / "sys/class/pwm").glob("pwmchip*")):
            if os.path.basename(os.readlink(chip / "device")) == device:
                return chip / "pwm0"
        raise KeyError(f"the simulated Tarragon has no PWM '{device}'")

    def pwm(self, device: str) -> tuple[int, int, bool]:
        """(period_ns, duty_ns, enabled) as last written by the driver."""
        d = self.pwm_dir(device)

        def num(attr: str) -> int:
            text = (d / attr).read_bytes().split(b"\n", 1)[0].strip()
            try:
                return int(text)
            except ValueError:
                return 0

        return num("period"), num("duty_cycle"), num("enable") == 1
