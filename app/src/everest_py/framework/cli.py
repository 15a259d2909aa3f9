# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The ``everest-py`` command line: run, check, modules, call, watch."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from everest_py import __version__
from everest_py.errors import BusError, CommandError, ConfigError
from everest_py.framework import logs, wire
from everest_py.framework.broker import configured_endpoint, running_endpoint
from everest_py.framework.bus import PROTOCOLS, BrokerEndpoint, Bus
from everest_py.framework.config import RunConfig, load_run_config
from everest_py.framework.contracts import Contracts
from everest_py.framework.manager import RunOptions, run_manager
from everest_py.framework.registry import Registry
from everest_py.framework.watch import printer

log = logging.getLogger("everest_py.cli")


def _ids(values: list[str] | None) -> frozenset[str]:
    return frozenset(v for group in values or [] for v in group.split(",") if v)


def _load(path: Path, standalone: frozenset[str] = frozenset()) -> tuple[RunConfig, Registry]:
    """The validated config and the registry that validated it (with the config's own dirs)."""
    registry = Registry(Contracts())
    return load_run_config(path, registry, standalone=standalone), registry


def _report(err: ConfigError | BusError) -> int:
    for line in str(err).splitlines():
        print(f"everest-py: {line}", file=sys.stderr)
    return 2


def cmd_check(args: argparse.Namespace) -> int:
    try:
        cfg, _ = _load(args.config, _ids(args.standalone))
    except ConfigError as err:
        return _report(err)
    print(f"{args.config}: ok, {len(cfg.modules)} modules")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    logs.setup(args.verbose - args.quiet)
    try:
        cfg, registry = _load(args.config, _ids(args.standalone))
    except ConfigError as err:
        return _report(err)
    unknown = sorted((_ids(args.standalone) | _ids(args.ignore)) - cfg.modules.keys())
    if unknown:
        print(
            f"everest-py: {args.config}: --standalone/--ignore name unknown module ids: {', '.join(unknown)}",
            file=sys.stderr,
        )
        return 2
    on_bus = None
    if args.watch:
        prefix = cfg.settings.mqtt_everest_prefix

        def on_bus(bus: Bus, topics: wire.Topics) -> None:
            show = printer(topics.prefix)
            bus.subscribe(f"{topics.prefix}#", show)
            if cfg.settings.mqtt_external_prefix != prefix:
                bus.subscribe(f"{cfg.settings.mqtt_external_prefix}everest_api/#", show, qos=0)

    options = RunOptions(
        isolate=args.isolate,
        standalone=_ids(args.standalone),
        ignore=_ids(args.ignore),
        status_fifo=args.status_fifo,
        retain_topics=args.retain_topics,
        protocol=args.mqtt_protocol,
        qos=args.mqtt_qos,
        verbosity=args.verbose - args.quiet,
        on_bus=on_bus,
    )
    return run_manager(cfg, registry, options)


def cmd_modules(args: argparse.Namespace) -> int:
    registry = Registry(Contracts())
    rows: list[dict[str, Any]] = []
    problems = 0
    for name in registry.names():
        try:
            m = registry.manifest(name)
        except ConfigError as err:
            print(f"everest-py: {name}: {err}", file=sys.stderr)
            problems += 1
            continue
        if m is None:
            continue  # registered, but its package is not there (yet)
        rows.append(
            {
                "name": name,
                "description": m.description,
                "provides": {k: p.interface for k, p in m.provides.items()},
                "requires": {
                    k: {"interface": r.interface, "min": r.min_connections, "max": r.max_connections}
                    for k, r in m.requires.items()
                },
                "config": sorted(m.config),
                "manifest": str(m.path),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            provides = ", ".join(f"{k}:{v}" for k, v in r["provides"].items()) or "-"
            requires = (
                ", ".join(f"{k}:{v['interface']}[{v['min']}..{v['max']}]" for k, v in r["requires"].items()) or "-"
            )
            print(f"{r['name']}\n  {r['description']}\n  provides: {provides}\n  requires: {requires}")
    return 2 if problems else 0


def _endpoint(args: argparse.Namespace) -> tuple[BrokerEndpoint, str]:
    prefix = args.prefix
    if args.socket:
        return BrokerEndpoint(socket_path=args.socket), prefix or "everest"
    if args.host or args.port:
        return BrokerEndpoint(host=args.host or "localhost", port=args.port or 1883), prefix or "everest"
    if args.config is not None:
        cfg, _ = _load(args.config)
        ep = configured_endpoint(cfg.settings) or running_endpoint()
        if ep is not None:
            return ep, prefix or cfg.settings.mqtt_everest_prefix
    ep = running_endpoint()
    if ep is None:
        raise BusError("no running everest-py found; name the broker with --socket or --host/--port")
    return ep, prefix or "everest"


async def _call(args: argparse.Namespace) -> int:
    endpoint, prefix = _endpoint(args)
    target, _, impl = args.target.partition(".")
    if not impl:
        raise BusError(f"name the target as MODULE_ID.IMPL_ID, not {args.target!r}")
    try:
        call_args = json.loads(args.args)
    except ValueError as err:
        raise BusError(f"the arguments are not JSON: {err}") from None
    if not isinstance(call_args, dict):
        raise BusError("the arguments must be a JSON object of named arguments")
    topics = wire.Topics(prefix)
    bus = Bus(endpoint, protocol=args.mqtt_protocol)
    await bus.connect()
    origin = f"cli-{wire.new_id()[:8]}"
    call_id = wire.new_id()
    topic = topics.cmd(target, impl, args.command)
    fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_result(_: str, payload: bytes) -> None:
        try:
            data = json.loads(payload)["data"]["data"]
        except (ValueError, KeyError, TypeError):
            return
        if data.get("id") == call_id and not fut.done():
            fut.set_result(data)

    bus.subscribe(f"{topic}/response/{origin}", on_result)
    bus.publish(topic, wire.envelope(wire.CMD, {"id": call_id, "args": call_args, "origin": origin}))
    try:
        async with asyncio.timeout(args.timeout):
            data = await fut
    except TimeoutError:
        raise CommandError(wire.CMD_TIMEOUT, f"no result from {target}.{impl} within {args.timeout} s") from None
    finally:
        await bus.close()
    if "error" in data:
        error = data["error"]
        raise CommandError(error.get(wire.ERROR_TYPE_KEY, ""), error.get(wire.ERROR_MSG_KEY, ""))
    print(json.dumps(data.get("retval")))
    return 0


async def _watch(args: argparse.Namespace) -> int:
    endpoint, prefix = _endpoint(args)
    topics = wire.Topics(prefix)
    bus = Bus(endpoint, protocol=args.mqtt_protocol)
    await bus.connect()
    show = printer(topics.prefix)
    if args.raw:

        def raw(topic: str, payload: bytes) -> None:
            print(topic, payload.decode(errors="replace"), flush=True)

        show = raw
    topic = args.filter or f"{topics.prefix}#"
    bus.subscribe(topic, show)
    await bus.drain()
    print(f"# watching {topic} on {endpoint} (Ctrl-C stops)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await bus.close()
    return 0


async def _session(args: argparse.Namespace) -> int:
    from everest_py.tools.session_view import SessionView

    endpoint, prefix = _endpoint(args)
    topics = wire.Topics(prefix)
    bus = Bus(endpoint, protocol=args.mqtt_protocol)
    await bus.connect()
    view = SessionView(topics.prefix)
    view.attach(bus)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("# waiting for charging sessions (Ctrl-C stops)", flush=True)
    await stop.wait()
    await bus.close()
    return 0


def cmd_session(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_session(args))
    except (BusError, ConfigError) as err:
        return _report(err)


def cmd_call(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_call(args))
    except CommandError as err:
        print(f"everest-py: {err.error_type}: {err.message}", file=sys.stderr)
        return 1
    except (BusError, ConfigError) as err:
        return _report(err)


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_watch(args))
    except (BusError, ConfigError) as err:
        return _report(err)


def _broker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="run config whose settings name the broker and prefix")
    p.add_argument("--socket", help="broker unix socket")
    p.add_argument("--host", help="broker host")
    p.add_argument("--port", type=int, help="broker port")
    p.add_argument("--prefix", help="everest MQTT prefix (default: everest)")
    p.add_argument("--mqtt-protocol", choices=sorted(PROTOCOLS), default="5")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="everest-py", description="EVerest-compatible charging station stack")
    ap.add_argument("--version", action="version", version=f"everest-py {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="run a config until stopped")
    run.add_argument("config", type=Path)
    run.add_argument("--isolate", action="store_true", help="every module in its own process")
    run.add_argument("--standalone", "-s", action="append", metavar="ID", help="started elsewhere; wait for it")
    run.add_argument("--ignore", action="append", metavar="ID", help="neither start nor wait for it")
    run.add_argument("--status-fifo", type=Path, help="write ALL_MODULES_STARTED here (EVerest's status FIFO)")
    run.add_argument("--retain-topics", action="store_true", help="keep the retained definition topics")
    run.add_argument("--mqtt-protocol", choices=sorted(PROTOCOLS), default="5")
    run.add_argument("--mqtt-qos", type=int, choices=(0, 1, 2), default=0, help="QoS of our frames (EVerest: 2)")
    run.add_argument("--watch", action="store_true", help="print the bus traffic live")
    run.add_argument("-v", "--verbose", action="count", default=0, help="debug logs, MQTT frames")
    run.add_argument("-q", "--quiet", action="count", default=0, help="warnings and errors only")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a config and exit")
    check.add_argument("config", type=Path)
    check.add_argument("--standalone", "-s", action="append", metavar="ID")
    check.set_defaults(func=cmd_check)

    modules = sub.add_parser("modules", help="list the modules and their manifests")
    modules.add_argument("--json", action="store_true")
    modules.set_defaults(func=cmd_modules)

    call = sub.add_parser("call", help="call a command of a running module")
    call.add_argument("target", metavar="MODULE_ID.IMPL_ID")
    call.add_argument("command", metavar="CMD")
    call.add_argument("args", metavar="JSON", nargs="?", default="{}")
    call.add_argument("--timeout", type=float, default=10.0)
    _broker_options(call)
    call.set_defaults(func=cmd_call)

    watch = sub.add_parser("watch", help="show the bus traffic of a running system")
    watch.add_argument("filter", nargs="?", help="MQTT topic filter (default: <prefix>/#)")
    watch.add_argument("--raw", action="store_true", help="topic and payload as they are")
    _broker_options(watch)
    watch.set_defaults(func=cmd_watch)

    session = sub.add_parser("session", help="follow charging sessions live: events, current, energy")
    _broker_options(session)
    session.set_defaults(func=cmd_session)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    sys.exit(args.func(args))
