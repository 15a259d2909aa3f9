# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A readable, live view of EVerest bus traffic (``everest-py watch`` and ``run --watch``)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from everest_py.framework import wire

_IMPL = re.compile(r"^modules/([^/]+)/impl/([^/]+)/(cmd|var|error)/(.+)$")
_MODULE = re.compile(r"^modules/([^/]+)/(ready|metadata|response)$")


def _short(value: Any, width: int) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(prefix: str, topic: str, payload: bytes, width: int = 110) -> str | None:
    """One line for one frame, or None for frames not worth a line (cleared retained topics)."""
    if not payload:
        return None
    rest = topic[len(prefix) :] if topic.startswith(prefix) else None
    if rest is None:
        return f"ext  {topic} {payload.decode(errors='replace')[:width]}"
    try:
        msg = json.loads(payload)
    except ValueError:
        return f"??   {rest} (not JSON) {payload[:60]!r}"
    kind = msg.get("msg_type") if isinstance(msg, dict) else None
    data = msg.get("data") if isinstance(msg, dict) else None
    if m := _IMPL.match(rest):
        mid, impl, what, name = m.groups()
        if what == "var" and isinstance(data, dict):
            return f"var  {mid}.{impl}.{name} = {_short(data.get('data'), width)}"
        if what == "cmd":
            cmd, _, caller = name.partition("/response/")
            if kind == wire.CMD_RESULT and isinstance(data, dict):
                d = data.get("data") or {}
                err = d.get("error")
                if err:
                    what = f"{err.get(wire.ERROR_TYPE_KEY)} {err.get(wire.ERROR_MSG_KEY)}"
                    return f"err< {mid}.{impl}.{cmd} → {caller}: {what}"
                return f"res< {mid}.{impl}.{cmd} → {caller}: {_short(d.get('retval'), width)}"
            if isinstance(data, dict):
                return f"cmd> {mid}.{impl}.{cmd}({_short(data.get('args'), width)}) from {data.get('origin')}"
        if what == "error" and isinstance(data, dict):
            verb = "RAISED " if kind == wire.RAISE_ERROR else "cleared"
            msgtext = f' "{data.get("message")}"' if data.get("message") else ""
            return f"err! {mid}.{impl} {verb} {name} ({data.get('severity')}){msgtext}"
    if m := _MODULE.match(rest):
        mid, what = m.groups()
        if what == "ready":
            return f"up   {mid} is ready"
        if what == "metadata" and isinstance(data, dict):
            impls = ", ".join(f"{k}:{v.get('interface')}" for k, v in (data.get("provides") or {}).items())
            return f"up   {mid} is {data.get('module')} providing {impls or 'nothing'}"
        if what == "response":
            return f"cfg  config sent to {mid}"
    if rest == "ready":
        return "==== global ready: every module is up ===="
    if rest == "config/request" and isinstance(data, dict):
        return f"cfg  {data.get('origin')} asks for its config"
    return f"def  {rest}"


def printer(prefix: str, out: TextIO = sys.stdout, width: int = 110) -> Callable[[str, bytes], None]:
    """A bus handler that prints each frame as one timestamped line."""

    def on_message(topic: str, payload: bytes) -> None:
        try:
            line = describe(prefix, topic, payload, width)
        except (AttributeError, TypeError, ValueError, KeyError):  # any frame from anyone: never fatal
            line = f"??   {topic} (unexpected shape) {payload[:80]!r}"
        if line is None:
            return
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
        out.write(f"{stamp} {line}\n")
        out.flush()

    return on_message
