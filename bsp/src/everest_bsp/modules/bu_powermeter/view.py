# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""What the bring-up screen shows, as plain data and plain lines (no curses, testable alone)."""

from __future__ import annotations

import textwrap
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# rows of the readings table: (label, key in types/powermeter.yaml#/Powermeter)
ROWS = (
    ("Energy import  Wh", "energy_Wh_import"),
    ("Energy export  Wh", "energy_Wh_export"),
    ("Power          W", "power_W"),
    ("Reactive power var", "VAR"),
    ("Voltage        V", "voltage_V"),
    ("Current        A", "current_A"),
    ("Frequency      Hz", "frequency_Hz"),
)
COLUMNS = ("total", "L1", "L2", "L3", "N", "DC")
KEYS_HELP = "[s] start transaction   [e] stop transaction   [c] cancel all transactions   [q] quit (stops the stack)"
STALE_S = 3.0  # a reading older than this is shown as stale (the meter publishes every second)

Style = str  # "title", "normal", "good", "bad", "dim"


@dataclass(frozen=True)
class Line:
    text: str
    style: Style = "normal"


@dataclass
class Result:
    when: str  # HH:MM:SS
    command: str
    status: str
    text: str


@dataclass
class View:
    """Everything on the screen; the module fills it from the bus."""

    module_id: str
    meter: str  # "<module>.<impl>" of the connected meter
    request: Mapping[str, Any]  # the TransactionReq that [s] sends
    reading: dict[str, Any] | None = None
    reading_at: float | None = None  # monotonic time of the reading
    readings: int = 0
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    public_key: str = ""
    results: deque[Result] = field(default_factory=lambda: deque(maxlen=6))
    busy: str = ""  # the command in flight
    log: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    log_file: str = ""


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    if abs(value) >= 1e9:
        return f"{value:.6g}"
    return f"{value:.1f}" if abs(value) >= 1e5 else f"{value:.3f}"


def table(reading: Mapping[str, Any] | None, width: int = 120) -> list[str]:
    """The readings by quantity and phase; N and DC only when the meter gives them."""
    parts = [reading.get(key) if reading is not None else None for _, key in ROWS]
    present = {c for p in parts if isinstance(p, Mapping) for c in p}
    columns = [c for c in COLUMNS if c in ("total", "L1", "L2", "L3") or c in present]
    cell = max(11, min(14, (width - 19) // len(columns)))
    rows = [f"{'':19}" + "".join(f"{c:>{cell}}" for c in columns)]
    for (label, _), part in zip(ROWS, parts, strict=True):
        cells = "".join(f"{number(part.get(c)) if isinstance(part, Mapping) else '':>{cell}}" for c in columns)
        rows.append(f"{label:19}{cells}")
    return rows


def wrapped(text: str, style: Style, width: int, max_lines: int = 3) -> list[Line]:
    """``text`` over up to ``max_lines`` lines of ``width``, continuations indented."""
    parts = textwrap.wrap(text, max(20, width), subsequent_indent="    ", max_lines=max_lines) or [""]
    return [Line(p, style) for p in parts]


def render(view: View, now: float, width: int, height: int) -> list[Line]:
    """The screen, top to bottom, each line cut to ``width``; the log fills what ``height`` leaves."""
    out: list[Line] = [Line(f"BUPowermeter {view.module_id}  ->  meter {view.meter}", "title")]
    if view.reading is None or view.reading_at is None:
        out.append(Line("no reading yet", "dim"))
    else:
        age = now - view.reading_at
        style = "bad" if age > STALE_S else "good"
        stamp = view.reading.get("timestamp", "")
        meter_id = view.reading.get("meter_id", "")
        text = f"reading #{view.readings}  {stamp}  ({age:.1f} s ago)  meter_id {meter_id}"
        out.append(Line(text, style))
    out += [Line(t) for t in table(view.reading, width)]
    if view.errors:
        for (etype, sub), message in sorted(view.errors.items()):
            out += wrapped(f"ERROR {etype}{'/' + sub if sub else ''}: {message}", "bad", width)
    else:
        out.append(Line("errors: none", "good"))
    if view.public_key:
        out.append(Line(f"OCMF public key: {view.public_key}", "dim"))
    out.append(Line(""))
    r = view.request
    out.append(
        Line(
            f"transaction {r.get('transaction_id', '')}  evse {r.get('evse_id', '')}  "
            f"id {r.get('identification_data', '')}  tariff {r.get('tariff_text', '')!r}",
            "title",
        )
    )
    out.append(Line(KEYS_HELP))
    if view.busy:
        out.append(Line(f"... {view.busy}", "dim"))
    for res in view.results:
        style = "bad" if res.status in ("UNEXPECTED_ERROR", "FAILED") else "normal"
        out += wrapped(f"{res.when} {res.command} -> {res.status}  {res.text}", style, width)
    out.append(Line(f"log (all of it in {view.log_file})" if view.log_file else "log", "title"))
    room = max(0, height - len(out))
    out += [Line(t, "dim") for t in list(view.log)[-room:]] if room else []
    return [Line(line.text[:width], line.style) for line in out[:height]]
