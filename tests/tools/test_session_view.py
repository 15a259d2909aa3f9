# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The session view turns evse_manager frames into event lines, live lines and a summary."""

from __future__ import annotations

import io
import json
from typing import Any

from everest_py.framework import wire
from everest_py.tools.session_view import SessionView


def var(view: SessionView, name: str, value: Any) -> None:
    view.on_message(f"p/modules/c1/impl/evse/var/{name}", wire.envelope(wire.VAR, {"data": value}))


def meter(wh: float, amps: float) -> dict[str, Any]:
    return {
        "timestamp": "2026-11-22T10:00:00.000Z",
        "energy_Wh_import": {"total": wh},
        "power_W": {"total": amps * 230 * 3},
        "current_A": {"L1": amps, "L2": amps, "L3": amps},
    }


def test_a_session_from_plug_to_summary():
    out = io.StringIO()
    view = SessionView("p/", out, live_every_s=0.0)
    token = {"id_token": {"value": "DEADBEEF", "type": "ISO14443"}, "authorization_type": "RFID"}
    var(view, "session_event", {"event": "SessionStarted", "session_started": {"reason": "EVConnected"}})
    var(view, "limits", {"max_current": 16.0, "nr_of_phases_available": 3})
    var(
        view,
        "session_event",
        {"event": "TransactionStarted", "transaction_started": {"id_tag": token, "meter_value": meter(100, 0)}},
    )
    var(view, "session_event", {"event": "ChargingStarted"})
    var(view, "powermeter", meter(150, 16.0))
    var(
        view,
        "session_event",
        {
            "event": "TransactionFinished",
            "transaction_finished": {"reason": "EVDisconnected", "meter_value": meter(600, 0)},
        },
    )
    var(view, "session_event", {"event": "SessionFinished"})
    view.on_message("p/modules/c1/impl/evse/var/session_event", b"not json")  # ignored
    text = out.getvalue()
    assert "SessionStarted (EVConnected)" in text
    assert "limit 16.0 A on 3 phase(s)" in text
    assert "TransactionStarted (DEADBEEF)" in text
    assert "L1  16.0 A" in text and "11.04 kW" in text
    assert "TransactionFinished (EVDisconnected)" in text
    (summary,) = view.summaries
    assert "0.500 kWh" in summary and "peak 11.04 kW" in summary and "token DEADBEEF" in summary
    assert "ended: EVDisconnected" in summary
    assert json.dumps(view.sessions) == "{}"
