# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The bring-up console's model: what the board reported, what the user commanded, keys → commands.

Nothing here does I/O. The module feeds variables, errors and command results in, asks
:meth:`BoardView.key` what a key means (a list of :class:`Command` to send, or :data:`QUIT`), and
draws :meth:`BoardView.render`'s lines with curses.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BSP, LOCK, RCD = "bsp", "lock_motor", "ac_rcd"  # requirement ids of the manifest
DUTY_STEP = 1.0  # percent per + or -
FIRST_DUTY = 10.0  # what + or - sends when no duty was sent yet (6 A)
LOG_LINES = 200
ENTRY_CHARS = "0123456789."
COLUMN = 40  # where the second column starts

ENTER, BACKSPACE, ESCAPE = "ENTER", "BACKSPACE", "ESC"

HELP = (
    "e/d enable/disable   0-9 . Enter: set duty   +/-: duty +/-1 %   x: X1   E: state E   F: state F",
    "p/o power on/off   t/s three/single phase   l/u lock/unlock   r/R RCD reset/self test   q quit",
)


def amps_for_duty(duty: float) -> float | None:
    """Current (A) a duty cycle (%) allows, IEC 61851-1 Table A.8; None where it allows no charging."""
    if 8.0 <= duty < 10.0:
        return 6.0
    if 10.0 <= duty <= 85.0:
        return round(duty * 0.6, 1)
    if 85.0 < duty <= 96.0:
        return round((duty - 64.0) * 2.5, 1)
    if 96.0 < duty <= 97.0:
        return 80.0
    return None


def duty_meaning(duty: float) -> str:
    amps = amps_for_duty(duty)
    if amps is not None:
        return f"{amps:g} A"
    if 3.0 <= duty <= 7.0:
        return "digital communication (HLC)"
    return "no charging"


@dataclass(frozen=True)
class Command:
    requirement: str
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.requirement}.{self.cmd}({args})"


class _Quit:
    def __repr__(self) -> str:
        return "QUIT"


QUIT = _Quit()
Action = Command | _Quit


@dataclass
class ErrorEntry:
    source: str  # requirement id
    type: str
    sub_type: str
    severity: str
    message: str


class BoardView:
    """Live state of the board under test, as far as its interfaces tell it."""

    def __init__(
        self,
        *,
        bsp: str = "bsp",
        lock: str | None = None,
        rcd: str | None = None,
        clock: Callable[[], float] = time.time,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.bsp_name = bsp
        self.lock_name = lock  # None: no lock_motor connected
        self.rcd_name = rcd  # None: no ac_rcd connected
        self.clock = clock
        self.echo = echo  # also hand every log line to this (a console-less run logs them)
        # reported by the board
        self.cp_state: str | None = None
        self.relays: str | None = None  # "on" (PowerOn) or "off" (PowerOff)
        self.ampacity: str | None = None
        self.capabilities: dict[str, Any] | None = None
        self.phases_available: int | None = None
        self.telemetry: dict[str, Any] | None = None
        self.rcd_current_mA: float | None = None
        self.errors: dict[tuple[str, str, str], ErrorEntry] = {}
        # commanded here (after the command succeeded)
        self.enabled: bool | None = None
        self.pilot: str | None = None  # "PWM", "X1", "E", "F"
        self.duty: float | None = None
        self.power_allowed: bool | None = None
        self.three_phases: bool | None = None
        self.lock_state: str | None = None
        self.rcd_state: str | None = None
        # the console
        self.entry = ""
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.changed = True

    # -- input from the bus ---------------------------------------------------------------------
    def note(self, text: str, echo: bool = True) -> None:
        """Add a log line; ``echo=False`` for lines that come from the log already."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.clock()))
        for line in text.splitlines() or [""]:
            self.log.append(f"{stamp} {line}")
        if echo and self.echo is not None:
            self.echo(text)
        self.changed = True

    def on_event(self, value: dict[str, Any]) -> None:
        event = str(value.get("event"))
        if event in ("PowerOn", "PowerOff"):
            self.relays = "on" if event == "PowerOn" else "off"
        else:
            self.cp_state = event
        self.note(f"event {event}")

    def on_var(self, name: str, value: Any) -> None:
        if name == "capabilities":
            self.capabilities = dict(value)
        elif name == "ac_pp_ampacity":
            self.ampacity = str(value.get("ampacity"))
            self.note(f"PP ampacity {self.ampacity}")
        elif name == "ac_nr_of_phases_available":
            self.phases_available = int(value)
        elif name == "telemetry":
            self.telemetry = dict(value)
        elif name == "rcd_current_mA":
            self.rcd_current_mA = float(value)
        elif name == "request_stop_transaction":
            self.note(f"stop transaction requested: {value}")
        self.changed = True

    def on_error(self, source: str, error: dict[str, Any], active: bool) -> None:
        key = (source, str(error.get("type", "")), str(error.get("sub_type") or ""))
        label = key[1] + (f"/{key[2]}" if key[2] else "")
        if active:
            self.errors[key] = ErrorEntry(
                source, key[1], key[2], str(error.get("severity", "")), str(error.get("message", ""))
            )
            self.note(f"{source}: error {label} raised: {error.get('message', '')}")
        else:
            self.errors.pop(key, None)
            self.note(f"{source}: error {label} cleared")

    # -- keys -------------------------------------------------------------------------------------
    def key(self, key: str) -> list[Action]:
        """What ``key`` does: printable keys as themselves, plus ENTER, BACKSPACE and ESC."""
        self.changed = True
        if key in ENTRY_CHARS:
            if len(self.entry) < 6:
                self.entry += key
            return []
        if key == BACKSPACE:
            self.entry = self.entry[:-1]
            return []
        if key == ESCAPE:
            self.entry = ""
            return []
        if key == ENTER:
            return self._enter()
        simple: dict[str, Command] = {
            "e": Command(BSP, "enable", {"value": True}),
            "d": Command(BSP, "enable", {"value": False}),
            "x": Command(BSP, "cp_state_X1"),
            "E": Command(BSP, "cp_state_E"),
            "F": Command(BSP, "cp_state_F"),
            "p": Command(BSP, "allow_power_on", {"value": {"allow_power_on": True, "reason": "FullPowerCharging"}}),
            "o": Command(BSP, "allow_power_on", {"value": {"allow_power_on": False, "reason": "PowerOff"}}),
            "t": Command(BSP, "ac_switch_three_phases_while_charging", {"value": True}),
            "s": Command(BSP, "ac_switch_three_phases_while_charging", {"value": False}),
            "l": Command(LOCK, "lock"),
            "u": Command(LOCK, "unlock"),
            "r": Command(RCD, "reset"),
            "R": Command(RCD, "self_test"),
        }
        if key == "q":
            return [QUIT]
        if key in ("+", "-"):
            step = DUTY_STEP if key == "+" else -DUTY_STEP
            duty = FIRST_DUTY if self.duty is None else self.duty + step
            return [Command(BSP, "pwm_on", {"value": round(min(99.0, max(1.0, duty)), 1)})]
        command = simple.get(key)
        if command is None:
            return []
        if command.requirement == LOCK and self.lock_name is None:
            self.note("no lock_motor connected")
            return []
        if command.requirement == RCD and self.rcd_name is None:
            self.note("no ac_rcd connected")
            return []
        if command.requirement == LOCK:
            self.lock_state = "locking..." if command.cmd == "lock" else "unlocking..."
        return [command]

    def _enter(self) -> list[Action]:
        text, self.entry = self.entry, ""
        if not text:
            return []
        try:
            duty = float(text)
        except ValueError:
            self.note(f"not a duty cycle: {text}")
            return []
        if not 0.0 < duty < 100.0:
            self.note(f"duty {duty:g} % is outside 0..100 % (use x for X1 and F for state F)")
            return []
        return [Command(BSP, "pwm_on", {"value": duty})]

    # -- command results ----------------------------------------------------------------------------
    def sent(self, command: Command) -> None:
        self.note(f"> {command}")

    def done(self, command: Command, result: Any) -> None:
        c, v = command.cmd, command.args.get("value", {})
        if c == "enable":
            self.enabled = bool(v)
        elif c == "pwm_on":
            self.pilot, self.duty = "PWM", float(v)
        elif c == "cp_state_X1":
            self.pilot = "X1"
        elif c == "cp_state_E":
            self.pilot = "E"
        elif c == "cp_state_F":
            self.pilot = "F"
        elif c == "allow_power_on":
            self.power_allowed = bool(v["allow_power_on"])
        elif c == "ac_switch_three_phases_while_charging":
            self.three_phases = bool(v)
        elif command.requirement == LOCK:
            self.lock_state = "locked" if c == "lock" else "unlocked"
        elif c == "reset":
            self.rcd_state = "reset ok" if result else "reset refused"
        elif c == "self_test":
            self.rcd_state = "self test run"
        suffix = f" -> {result}" if result is not None else ""
        self.note(f"< {command.requirement}.{c} ok{suffix}")

    def failed(self, command: Command, reason: str) -> None:
        if command.requirement == LOCK:
            self.lock_state = f"{command.cmd} failed"
        self.note(f"< {command.requirement}.{command.cmd} failed: {reason}")

    # -- drawing ----------------------------------------------------------------------------------
    def _pilot_text(self) -> str:
        if self.pilot is None:
            return "-"
        if self.pilot == "PWM" and self.duty is not None:
            return f"PWM {self.duty:g} % = {duty_meaning(self.duty)}"
        return self.pilot

    def _caps_text(self) -> str:
        c = self.capabilities
        if c is None:
            return "-"
        return (
            f"{c.get('min_current_A_import')}-{c.get('max_current_A_import')} A, "
            f"{c.get('min_phase_count_import')}-{c.get('max_phase_count_import')} phases, "
            f"phase switch {'yes' if c.get('supports_changing_phases_during_charging') else 'no'}, "
            f"state E {'yes' if c.get('supports_cp_state_E') else 'no'}, {c.get('connector_type')}"
        )

    def lines(self, width: int, height: int) -> list[tuple[str, str]]:
        """The screen as (text, style) rows; styles: title, label, error, dim, normal."""

        def yn(v: bool | None, yes: str, no: str) -> str:
            return "-" if v is None else (yes if v else no)

        def opt(v: Any) -> str:
            return "-" if v is None else str(v)

        reported = [
            ("CP state", opt(self.cp_state)),
            ("Relays", opt(self.relays)),
            ("PP ampacity", opt(self.ampacity)),
            ("Phases", f"{opt(self.phases_available)} available"),
        ]
        sent = [
            ("Port", yn(self.enabled, "enabled", "disabled")),
            ("Pilot", self._pilot_text()),
            ("Power", yn(self.power_allowed, "allowed", "not allowed")),
            ("Phases", yn(self.three_phases, "three", "single")),
        ]
        if self.rcd_name is not None:
            current = "-" if self.rcd_current_mA is None else f"{self.rcd_current_mA:g} mA"
            reported.append(("RCD current", current))
            sent.append(("RCD", opt(self.rcd_state)))
        if self.lock_name is not None:
            sent.append(("Lock", opt(self.lock_state)))
        rows: list[tuple[str, str]] = [
            (
                f"BUEvseBoardSupport  bsp: {self.bsp_name}  lock: {opt(self.lock_name)}  rcd: {opt(self.rcd_name)}",
                "title",
            ),
            ("", "normal"),
            (f"{'Board reports':<{COLUMN}}Sent from here (after the command succeeded)", "title"),
        ]
        for n in range(max(len(reported), len(sent))):
            left = f"{reported[n][0]:<14}{reported[n][1]}" if n < len(reported) else ""
            right = f"{sent[n][0]:<8}{sent[n][1]}" if n < len(sent) else ""
            rows.append((f"{left:<{COLUMN}}{right}", "label"))
        rows.append((f"{'Capabilities':<14}{self._caps_text()}", "label"))
        if self.telemetry:
            t = ", ".join(f"{k}={v}" for k, v in self.telemetry.items())
            rows.append((f"{'Telemetry':<14}{t}", "dim"))
        rows.append(("", "normal"))
        rows.append((f"Active errors ({len(self.errors)})", "title"))
        for e in self.errors.values():
            sub = f"/{e.sub_type}" if e.sub_type else ""
            rows.append((f"  [{e.severity}] {e.source}: {e.type}{sub} {e.message}", "error"))
        rows.append(("", "normal"))
        rows.append(("Log", "title"))
        footer = [
            (
                f"Duty: {self.entry}_" + (f"  ({duty_meaning(float(self.entry))})" if _number(self.entry) else ""),
                "label",
            ),
            *((line, "dim") for line in HELP),
        ]
        room = max(0, height - len(rows) - len(footer))
        log = list(self.log)[-room:] if room else []
        rows += [(line, "normal") for line in log]
        rows += [("", "normal")] * (height - len(rows) - len(footer))
        rows += footer
        return [(text[:width], style) for text, style in rows[:height]]


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
