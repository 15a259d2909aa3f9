# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Everything the Tarragon driver holds of the board: line requests, ADC channels, the CP PWM.

Opening waits a little for devices that are not there yet (udev on a board that just booted, or
a board simulator that is still building its tree) and then names exactly what is missing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from everest_bsp.hal.errors import NotFoundError
from everest_bsp.hal.gpio import Edge, LineRequest, LineSettings, request_lines
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.hal.pwm import SysfsPwm
from everest_py.errors import HardwareError

HAL_WAIT_S = 5.0
CP_PERIOD_NS = 1_000_000  # 1 kHz, IEC 61851-1

T = TypeVar("T")


@dataclass
class RelayLines:
    name: str
    actuator: LineRequest
    actuator_line: str
    feedback: LineRequest | None
    feedback_line: str


@dataclass
class TarragonHardware:
    cp: LineRequest  # CP_INVERT and the two peak resets
    cp_invert: str
    rst_pos: str
    rst_neg: str
    adc_pos: AdcChannel
    adc_neg: AdcChannel
    pwm: SysfsPwm
    relays: list[RelayLines]
    pp: AdcChannel | None = None
    rcm: LineRequest | None = None
    rcm_line: str = ""
    grid: LineRequest | None = None
    grid_line: str = ""
    _fds: list[int] = field(default_factory=list)

    def open_pwm_fds(self) -> tuple[int, int]:
        """Write-only fds of duty_cycle and enable for the C core (closed with the hardware)."""
        duty = os.open(self.pwm.duty_path, os.O_WRONLY | os.O_CLOEXEC)
        enable = os.open(self.pwm.enable_path, os.O_WRONLY | os.O_CLOEXEC)
        self._fds += [duty, enable]
        return duty, enable

    def native(self, request: LineRequest | None, line: str) -> Any:
        return None if request is None else request.native(line)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        for adc in (self.adc_pos, self.adc_neg, self.pp):
            if adc is not None:
                adc.close()
        for r in self.relays:
            r.actuator.release()
            if r.feedback is not None:
                r.feedback.release()
        for req in (self.cp, self.rcm, self.grid):
            if req is not None:
                req.release()


async def with_wait(
    what: Callable[[], T], log: logging.Logger | logging.LoggerAdapter[logging.Logger], wait_s: float = HAL_WAIT_S
) -> T:
    """Call ``what`` until it stops raising NotFoundError, for at most ``wait_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    told = False
    while True:
        try:
            return what()
        except NotFoundError as err:
            if loop.time() >= deadline:
                raise
            if not told:
                log.info("waiting for the board: %s", err)
                told = True
        await asyncio.sleep(0.1)


def consumer_name(name: str) -> str:
    return name.replace("/", "-")


def open_hardware(cfg: Any) -> TarragonHardware:
    """Open every device named in a CbTarragonDriver config (``cfg`` is its config dataclass)."""
    root = Path(cfg.hal_root)
    opened: list[Any] = []

    def keep(x: T) -> T:
        opened.append(x)
        return x

    try:
        adc_pos = keep(AdcChannel.open(root, cfg.cp_pos_peak_adc_device, cfg.cp_pos_peak_adc_channel))
        adc_neg = keep(AdcChannel.open(root, cfg.cp_neg_peak_adc_device, cfg.cp_neg_peak_adc_channel))
        pwm = SysfsPwm.open(root, cfg.cp_pwm_device, cfg.cp_pwmchannel)
        cp = keep(
            request_lines(
                root,
                "CP",
                {
                    cfg.cp_invert_gpio_line_name: LineSettings(output=True),
                    cfg.cp_rst_pos_peak_gpio_line_name: LineSettings(output=True),
                    cfg.cp_rst_neg_peak_gpio_line_name: LineSettings(output=True),
                },
            )
        )
        relays = []
        for n in (1, 2):
            name = getattr(cfg, f"relay_{n}_name")
            act_line = getattr(cfg, f"relay_{n}_actuator_gpio_line_name")
            fb_line = getattr(cfg, f"relay_{n}_feedback_gpio_line_name")
            fb_type = getattr(cfg, f"contactor_{n}_feedback_type")
            if n == 2 and cfg.switch_3ph1ph_wiring == "none":
                continue  # the second relay is only used for phase switching
            act = keep(request_lines(root, consumer_name(name), {act_line: LineSettings(output=True)}))
            fb = None
            if fb_type != "none":
                fb = keep(
                    request_lines(
                        root,
                        consumer_name(name),
                        {
                            fb_line: LineSettings(
                                active_low=fb_type == "nc",
                                edge=Edge.BOTH,
                                debounce_us=getattr(cfg, f"relay_{n}_feedback_gpio_debounce_us"),
                            )
                        },
                    )
                )
            relays.append(RelayLines(name, act, act_line, fb, fb_line))
        pp = None
        if cfg.connector_type == "IEC62196Type2Socket":
            pp = keep(AdcChannel.open(root, cfg.pp_adc_device, cfg.pp_adc_channel))
        rcm = None
        if cfg.rcm_enable:
            rcm = keep(
                request_lines(
                    root, "RCM", {cfg.rcm_fault_gpio_line_name: LineSettings(active_low=cfg.rcm_fault_active_low)}
                )
            )
        grid = None
        if cfg.grid_phase_count_gpio_line_name:
            grid = keep(
                request_lines(
                    root,
                    "grid phase count",
                    {cfg.grid_phase_count_gpio_line_name: LineSettings(active_low=cfg.grid_phase_count_active_low)},
                )
            )
    except BaseException:
        for x in opened:
            if isinstance(x, AdcChannel):
                x.close()
            else:
                x.release()
        raise
    return TarragonHardware(
        cp=cp,
        cp_invert=cfg.cp_invert_gpio_line_name,
        rst_pos=cfg.cp_rst_pos_peak_gpio_line_name,
        rst_neg=cfg.cp_rst_neg_peak_gpio_line_name,
        adc_pos=adc_pos,
        adc_neg=adc_neg,
        pwm=pwm,
        relays=relays,
        pp=pp,
        rcm=rcm,
        rcm_line=cfg.rcm_fault_gpio_line_name,
        grid=grid,
        grid_line=cfg.grid_phase_count_gpio_line_name,
    )


def prepare_pwm(pwm: SysfsPwm) -> None:
    """Init as the board wants it: disabled if found enabled, 1 kHz, 100 % (chargebyte-hw.md §2.5)."""
    try:
        if pwm.enabled:
            pwm.enable(False)
        pwm.configure(CP_PERIOD_NS, CP_PERIOD_NS)
    except (OSError, ValueError) as err:
        raise HardwareError(f"cannot set up the pilot PWM {pwm.path}: {err}") from err
