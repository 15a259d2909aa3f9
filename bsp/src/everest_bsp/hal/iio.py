# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""IIO ADC channels found by device name (``sys/bus/iio/devices/*/name``), read as raw counts."""

from __future__ import annotations

import os
from pathlib import Path

from everest_bsp.hal.errors import NotFoundError
from everest_py.errors import HardwareError


def iio_device_dir(root: str | Path, device_name: str) -> Path:
    """The IIO device directory whose ``name`` attribute is ``device_name``."""
    base = Path(root) / "sys/bus/iio/devices"
    for dev in sorted(base.glob("iio:device*")):
        try:
            if (dev / "name").read_text().strip() == device_name:
                return dev
        except OSError:
            continue
    raise NotFoundError(f"no IIO device named '{device_name}' under {base}")


class AdcChannel:
    """One ``in_<channel>_raw`` attribute, kept open and re-read from offset 0 (as sysfs wants)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise NotFoundError(f"cannot open ADC channel {path}: {err.strerror}") from err

    @classmethod
    def open(cls, root: str | Path, device_name: str, channel: str) -> AdcChannel:
        """``channel`` as in the configs: ``voltage2`` → ``in_voltage2_raw``."""
        path = iio_device_dir(root, device_name) / f"in_{channel}_raw"
        if not path.exists():
            raise NotFoundError(f"IIO device '{device_name}' has no channel '{channel}' ({path.name} missing)")
        return cls(path)

    def fileno(self) -> int:
        return self._fd

    def read_raw(self) -> int:
        try:
            data = os.pread(self._fd, 32, 0)
        except OSError as err:
            raise HardwareError(f"reading {self.path} failed: {err.strerror}") from err
        text = data.split(b"\n", 1)[0].strip()
        try:
            return int(text)
        except ValueError as err:
            raise HardwareError(f"{self.path} holds no number: {text!r}") from err

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> AdcChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
