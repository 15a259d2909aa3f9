# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A live, human view of charging sessions: events, current, power and energy, a summary."""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from everest_py.framework.bus import Bus

_VAR = re.compile(r"^modules/([^/]+)/impl/([^/]+)/var/(session_event|powermeter|limits)$")


@dataclass
class _Session:
    started: float
    reason: str = ""
    id_tag: str = ""
    charging_since: float | None = None
    charging_s: float = 0.0
    start_wh: float | None = None
    last_wh: float | None = None
    max_w: float = 0.0
    stop_reason: str = ""
    events: list[str] = field(default_factory=list)


def _token(payload: dict[str, Any] | None) -> str:
    if not isinstance(payload, dict):
        return ""
    tag = payload.get("id_tag") or payload.get("provided_token") or {}
    if isinstance(tag, dict):
        inner = tag.get("id_token")
        return str(inner.get("value", "")) if isinstance(inner, dict) else str(tag.get("value", ""))
    return str(tag)


class SessionView:
    """Feed it bus frames (``on_message``); it writes lines about each EVSE's sessions."""

    def __init__(self, prefix: str, out: TextIO = sys.stdout, live_every_s: float = 1.0) -> None:
        self.prefix = prefix
        self.out = out
        self.live_every_s = live_every_s
        self.sessions: dict[str, _Session] = {}
        self.limits: dict[str, float] = {}
        self._last_live: dict[str, float] = {}
        self.summaries: list[str] = []

    def attach(self, bus: Bus) -> None:
        """Subscribe to the evse_manager variables this view shows, on every EVSE."""
        for var in ("session_event", "powermeter", "limits"):
            bus.subscribe(f"{self.prefix}modules/+/impl/+/var/{var}", self.on_message)

    def _say(self, evse: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.out.write(f"{stamp} {evse:<14} {text}\n")
        self.out.flush()

    def on_message(self, topic: str, payload: bytes) -> None:
        m = _VAR.match(topic[len(self.prefix) :]) if topic.startswith(self.prefix) else None
        if m is None or not payload:
            return
        evse, _, var = m.groups()
        try:
            value = json.loads(payload)["data"]["data"]
        except (ValueError, KeyError, TypeError):
            return
        if var == "session_event" and isinstance(value, dict):
            self._event(evse, value)
        elif var == "powermeter" and isinstance(value, dict):
            self._meter(evse, value)
        elif var == "limits" and isinstance(value, dict):
            self._limits(evse, value)

    def _limits(self, evse: str, value: dict[str, Any]) -> None:
        amps = value.get("max_current")
        if isinstance(amps, int | float) and self.limits.get(evse) != amps:
            self.limits[evse] = amps
            self._say(evse, f"limit {amps:.1f} A on {value.get('nr_of_phases_available', '?')} phase(s)")

    def _event(self, evse: str, ev: dict[str, Any]) -> None:
        kind = str(ev.get("event", "?"))
        now = time.monotonic()
        s = self.sessions.get(evse)
        detail = ""
        if kind == "SessionStarted":
            s = self.sessions[evse] = _Session(started=now)
            s.reason = str((ev.get("session_started") or {}).get("reason", ""))
            detail = s.reason
        elif kind in ("Authorized", "Deauthorized"):
            detail = _token(ev.get("authorization_event"))
        elif kind == "TransactionStarted":
            ts = ev.get("transaction_started") or {}
            detail = _token(ts)
            if s is not None:
                s.id_tag = detail
                wh = ((ts.get("meter_value") or {}).get("energy_Wh_import") or {}).get("total")
                s.start_wh = wh if isinstance(wh, int | float) else s.last_wh
        elif kind == "ChargingStarted" and s is not None:
            s.charging_since = now
        elif kind == "TransactionFinished":
            tf = ev.get("transaction_finished") or {}
            detail = str(tf.get("reason", ""))
            if s is not None:
                s.stop_reason = detail
                wh = ((tf.get("meter_value") or {}).get("energy_Wh_import") or {}).get("total")
                if isinstance(wh, int | float):
                    s.last_wh = wh
        if s is not None and kind != "ChargingStarted" and s.charging_since is not None:
            s.charging_s += now - s.charging_since
            s.charging_since = None
        if s is not None:
            s.events.append(kind)
        self._say(evse, f"{kind}{f' ({detail})' if detail else ''}")
        if kind == "SessionFinished" and s is not None:
            self._summary(evse, s, now)
            del self.sessions[evse]

    def _meter(self, evse: str, pm: dict[str, Any]) -> None:
        s = self.sessions.get(evse)
        wh = (pm.get("energy_Wh_import") or {}).get("total")
        if s is not None and isinstance(wh, int | float):
            s.last_wh = wh
            if s.start_wh is None:
                s.start_wh = wh
        watts = (pm.get("power_W") or {}).get("total")
        if s is not None and isinstance(watts, int | float):
            s.max_w = max(s.max_w, watts)
        if s is None or s.charging_since is None:
            return
        now = time.monotonic()
        if now - self._last_live.get(evse, 0.0) < self.live_every_s:
            return
        self._last_live[evse] = now
        amps = pm.get("current_A") or {}
        phases = "  ".join(f"{p} {amps[p]:5.1f} A" for p in ("L1", "L2", "L3") if isinstance(amps.get(p), int | float))
        used = (s.last_wh or 0.0) - (s.start_wh or 0.0)
        kw = (watts or 0.0) / 1000
        self._say(evse, f"charging  {phases}  {kw:6.2f} kW  {used / 1000:7.3f} kWh")

    def _summary(self, evse: str, s: _Session, now: float) -> None:
        energy = ((s.last_wh or 0.0) - (s.start_wh or 0.0)) / 1000
        line = (
            f"session summary: {now - s.started:.1f} s plugged, {s.charging_s:.1f} s charging, "
            f"{energy:.3f} kWh, peak {s.max_w / 1000:.2f} kW"
            + (f", token {s.id_tag}" if s.id_tag else "")
            + (f", ended: {s.stop_reason}" if s.stop_reason else "")
        )
        self.summaries.append(f"{evse}: {line}")
        self._say(evse, "─" * 8 + " " + line)
