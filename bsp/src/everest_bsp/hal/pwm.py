# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""sysfs PWM channels, the chip found by the basename of its ``device`` link (``20fc000.pwm``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from everest_bsp.hal.errors import NotFoundError
from everest_py.errors import HardwareError

EXPORT_WAIT_S = 1.0  # udev may need a moment to make a freshly exported channel writable


def pwm_chip_dir(root: str | Path, device_name: str) -> Path:
    base = Path(root) / "sys/class/pwm"
    for chip in sorted(base.glob("pwmchip*")):
        try:
            if os.path.basename(os.readlink(chip / "device")) == device_name:
                return chip
        except OSError:
            continue
    raise NotFoundError(f"no PWM chip of device '{device_name}' under {base}")


def write_attr(path: Path, value: int | str) -> None:
    try:
        with open(path, "w") as f:
            f.write(f"{value}\n")
    except OSError as err:
        raise HardwareError(f"writing {value} to {path} failed: {err.strerror}") from err


def read_attr(path: Path) -> str:
    try:
        return path.read_text().split("\n", 1)[0].strip()
    except OSError as err:
        raise HardwareError(f"reading {path} failed: {err.strerror}") from err


class SysfsPwm:
    """One exported PWM channel: period and duty in nanoseconds, enable, polarity (read only)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, root: str | Path, device_name: str, channel: int) -> SysfsPwm:
        chip = pwm_chip_dir(root, device_name)
        path = chip / f"pwm{channel}"
        if not path.is_dir():
            write_attr(chip / "export", channel)
            deadline = time.monotonic() + EXPORT_WAIT_S
            while not (path / "enable").exists():
                if time.monotonic() > deadline:
                    raise NotFoundError(f"PWM channel {channel} of '{device_name}' did not appear after export")
                time.sleep(0.01)
        return cls(path)

    @property
    def duty_path(self) -> Path:
        return self.path / "duty_cycle"

    @property
    def enable_path(self) -> Path:
        return self.path / "enable"

    @property
    def period_ns(self) -> int:
        return int(read_attr(self.path / "period"))

    @property
    def duty_ns(self) -> int:
        return int(read_attr(self.duty_path))

    @property
    def enabled(self) -> bool:
        return read_attr(self.enable_path) == "1"

    @property
    def polarity(self) -> str:
        return read_attr(self.path / "polarity")

    def configure(self, period_ns: int, duty_ns: int) -> None:
        """Set period and duty in an order the kernel accepts (duty never above the period)."""
        if duty_ns > period_ns:
            raise ValueError(f"duty {duty_ns} ns exceeds the period {period_ns} ns")
        if duty_ns > self.period_ns:
            write_attr(self.path / "period", period_ns)
            write_attr(self.duty_path, duty_ns)
        else:
            write_attr(self.duty_path, duty_ns)
            write_attr(self.path / "period", period_ns)

    def set_duty_ns(self, duty_ns: int) -> None:
        write_attr(self.duty_path, duty_ns)

    def enable(self, on: bool) -> None:
        write_attr(self.enable_path, 1 if on else 0)
