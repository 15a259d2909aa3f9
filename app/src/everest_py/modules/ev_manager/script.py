# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The EvManager simulation command language: ``;``-separated commands, parsed and checked up front.

``sleep 1;iec_wait_pwr_ready;sleep 1;draw_power_regulated 16,3;sleep 30;unplug`` becomes six
:class:`Step`\\ s. Arguments follow the command name, separated by commas and/or blanks. A script
with an unknown command, a wrong argument count or a value out of range is refused as a whole
(:class:`ScriptError` names the step), so a broken script never runs halfway.

The ``iso_*`` commands of EVerest's language are known but refused: they need an ISO 15118 car
stack, which everest-py does not have yet.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


class ScriptError(ValueError):
    """A script that cannot run; the message names the step and the problem."""


@dataclass(frozen=True)
class Arg:
    name: str
    low: float
    high: float = math.inf
    choices: tuple[float, ...] = ()


@dataclass(frozen=True)
class Step:
    name: str
    args: tuple[float, ...]
    text: str

    def __str__(self) -> str:
        return self.text


_PHASES = Arg("phases", 1, 3, choices=(1, 3))
COMMANDS: dict[str, tuple[Arg, ...]] = {
    "sleep": (Arg("seconds", 0),),
    "iec_wait_pwr_ready": (),
    "wait_for_real_plugin": (),
    "draw_power_regulated": (Arg("current_A", 0, 80), _PHASES),
    "draw_power_fixed": (Arg("current_A", 0, 80), _PHASES),
    "pause": (),
    "unplug": (),
    "plugin": (),
    "error_e": (),
    "diode_fail": (),
    "rcd_current": (Arg("current_mA", 0),),
    "set_soc": (Arg("soc_percent", 0, 100),),
}
ISO_COMMANDS = frozenset(
    {
        "iso_wait_slac_matched",
        "iso_start_v2g_session",
        "iso_wait_pwr_ready",
        "iso_draw_power_regulated",
        "iso_dc_power_on",
        "iso_stop_charging",
        "iso_wait_for_stop",
        "iso_wait_v2g_session_stopped",
        "iso_pause_charging",
        "iso_wait_for_resume",
        "iso_start_bcb_toggle",
        "iso_wait_pwm_is_running",
    }
)
_SEPARATORS = re.compile(r"[,\s]+")


def _number(text: str, arg: Arg) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{arg.name} must be a number, not {text!r}") from None
    if not math.isfinite(value) or not arg.low <= value <= arg.high:
        bounds = f"at least {arg.low:g}" if math.isinf(arg.high) else f"{arg.low:g}..{arg.high:g}"
        raise ValueError(f"{arg.name} must be {bounds}, not {text}")
    if arg.choices and value not in arg.choices:
        raise ValueError(f"{arg.name} must be one of {', '.join(f'{c:g}' for c in arg.choices)}, not {text}")
    return value


def parse_step(text: str) -> Step:
    """One command with its arguments; ValueError without the step number."""
    name, _, rest = text.strip().partition(" ")
    name = name.strip()
    if name in ISO_COMMANDS:
        raise ValueError(f"{name} is not supported until everest-py has an ISO 15118 car (only IEC commands run)")
    spec = COMMANDS.get(name)
    if spec is None:
        raise ValueError(f"unknown command {name!r}")
    tokens = [t for t in _SEPARATORS.split(rest.strip()) if t]
    if len(tokens) != len(spec):
        wanted = ", ".join(a.name for a in spec) or "none"
        raise ValueError(f"{name} takes {len(spec)} argument(s) ({wanted}), got {len(tokens)}")
    values = tuple(_number(t, a) for t, a in zip(tokens, spec, strict=True))
    return Step(name, values, f"{name} {','.join(tokens)}".strip())


def parse_script(text: str) -> list[Step]:
    """Every step of a script; ScriptError (naming the step) if any step is wrong or there is none."""
    steps: list[Step] = []
    parts = [p.strip() for p in text.split(";") if p.strip()]
    for n, part in enumerate(parts, start=1):
        try:
            steps.append(parse_step(part))
        except ValueError as err:
            raise ScriptError(f"step {n} ({part!r}): {err}") from None
    if not steps:
        raise ScriptError("the script has no commands")
    return steps
