# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The main job: run a SIL config and show it live.

With EVSEs in the config it shows their charging sessions (events, current, power, energy, a
summary per session); without, it shows every bus frame and exercises the modules once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from everest_py.errors import CommandError
from everest_py.framework import wire
from everest_py.framework.broker import running_endpoint, runtime_dir
from everest_py.framework.bus import BrokerEndpoint, Bus
from everest_py.testing import Probe
from everest_py.tools.session_view import SessionView

TOKEN_OK = {"id_token": {"value": "DEADBEEF", "type": "ISO14443"}, "authorization_type": "RFID"}
TOKEN_UNKNOWN = {"id_token": {"value": "0BADC0DE", "type": "ISO14443"}, "authorization_type": "RFID"}


def say(text: str) -> None:
    print(f"\n>>> {text}", flush=True)


async def broker_endpoint() -> BrokerEndpoint:
    for _ in range(100):
        endpoint = running_endpoint(runtime_dir())
        if endpoint is not None:
            return endpoint
        await asyncio.sleep(0.05)
    raise SystemExit("the stack recorded no broker")


async def sessions(prefix: str, stop: asyncio.Event) -> None:
    bus = Bus(await broker_endpoint())
    await bus.connect()
    topics = wire.Topics(prefix)
    view = SessionView(topics.prefix)
    view.attach(bus)
    say("following charging sessions")
    await stop.wait()
    await bus.close()


async def demo(prefix: str, modules: dict[str, Any]) -> None:
    probe = Probe(await broker_endpoint(), prefix, module_id="demo")
    await probe.connect()

    async def call(mid: str, impl: str, cmd: str, args: dict[str, Any]) -> None:
        if mid not in modules:
            return
        say(f"demo calls {mid}.{impl}.{cmd}")
        try:
            await probe.call_raw(mid, impl, cmd, args)
        except CommandError as err:
            print(f"    (error result: {err})", flush=True)
        await asyncio.sleep(0.3)

    await call("store", "main", "store", {"key": "demo.started", "value": time.strftime("%FT%TZ", time.gmtime())})
    await call("store", "main", "load", {"key": "demo.started"})
    await call("charger_info", "main", "get_charger_information", {})
    await call("validator", "main", "validate_token", {"provided_token": TOKEN_OK})
    await call("allowlist", "token_validator", "validate_token", {"provided_token": TOKEN_OK})
    await call("allowlist", "token_validator", "validate_token", {"provided_token": TOKEN_UNKNOWN})
    await call("auth_list", "main", "validate_token", {"provided_token": TOKEN_OK})
    await call("error_history", "error_history", "get_errors", {"filters": {}})
    await probe.close()


async def follow(prefix: str, proc: subprocess.Popen[bytes], duration: float | None) -> None:
    """Show sessions until the stack ends, Ctrl-C, or ``duration`` seconds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    viewer = asyncio.create_task(sessions(prefix, stop))
    deadline = None if duration is None else loop.time() + duration

    def check() -> None:
        if proc.poll() is not None or (deadline is not None and loop.time() >= deadline):
            stop.set()
        else:
            loop.call_later(0.2, check)

    check()
    await stop.wait()
    await viewer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config", type=Path)
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    args = ap.parse_args()
    template = Path(__file__).resolve().parents[1] / "config" / "sim" / args.config.name
    if template.is_file():
        # a board's config, run unchanged against the simulated board (config/sim/ has its overlay)
        from everest_bsp.sim.overlay import prepare

        args.config = prepare(
            args.config, template, runtime_dir() / "sim" / args.config.stem, repo=template.parents[2], RPC_PORT="8080"
        )
        say(f"{args.config.name} runs unchanged with the overlay {args.config.parent / 'user-config'}")
    raw = yaml.safe_load(args.config.read_text())
    prefix = (raw.get("settings") or {}).get("mqtt_everest_prefix", "everest")
    fifo = runtime_dir() / "status"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    charger = any(m.get("module") == "EvseManager" for m in raw["active_modules"].values())
    cmd = [sys.executable, "-m", "everest_py", "run", str(args.config), "--status-fifo", str(fifo)]
    cmd += ["-q"] if charger else ["--watch"]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 30
    status = b""
    try:
        while b"ALL_MODULES_STARTED" not in status:
            if proc.poll() is not None or time.monotonic() > deadline:
                return proc.wait()
            with contextlib.suppress(BlockingIOError):
                status += os.read(reader, 256)
            time.sleep(0.02)
        if charger:
            asyncio.run(follow(prefix, proc, args.duration))
        else:
            asyncio.run(demo(prefix, raw["active_modules"]))
            say(
                "the stack keeps running: Ctrl-C stops it"
                if args.duration is None
                else f"stopping in {args.duration:g} s"
            )
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(args.duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()
    finally:
        os.close(reader)
        fifo.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
