# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EvManager: the bus adapter of the simulated car (car_simulator commands, external topics, board calls)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from everest_py.errors import CommandError
from everest_py.framework.module import Module, command
from everest_py.modules.ev_manager.car import Car, CarParams
from everest_py.modules.ev_manager.runner import ScriptRunner
from everest_py.modules.ev_manager.script import ScriptError, Step, parse_script

TICK_S = 0.05
INFO_S = 1.0  # at most one ev_info per second


@dataclass(frozen=True)
class EvManagerConfig:
    connector_id: int
    auto_enable: bool
    auto_exec: bool
    auto_exec_infinite: bool
    auto_exec_commands: str
    ac_nominal_voltage: float
    dc_max_current_limit: int
    dc_max_power_limit: int
    dc_max_voltage_limit: int
    dc_energy_capacity: int
    dc_target_current: int
    dc_target_voltage: int
    support_sae_j2847: bool
    dc_discharge_max_current_limit: int
    dc_discharge_max_power_limit: int
    dc_discharge_target_current: int
    dc_discharge_v2g_minimal_soc: int
    max_current: float
    three_phases: bool
    departure_time: int
    e_amount: int
    soc: int
    keep_cross_boot_plugin_state: bool
    plugin_commands: str
    force_payment_option: bool


Job = Callable[[], Awaitable[Any]]


class _BoardCalls:
    """EvBoard for the car: each command becomes a job, sent in order by the module's worker."""

    def __init__(self, module: EvManager) -> None:
        self._m = module

    def send(self, cmd: str, args: dict[str, Any]) -> None:
        self._m.log.debug("board: %s %s", cmd, args)
        self._m.queue(lambda: self._m.r.ev_board_support[0].call_cmd(cmd, args), f"ev_board_support.{cmd}")


class EvManager(Module):
    Config = EvManagerConfig
    config: EvManagerConfig

    _car: Car | None = None
    _runner: ScriptRunner | None = None
    _enabled = False
    _plugin_steps: list[Step]
    _jobs: asyncio.Queue[tuple[Job, str]]
    _info: dict[str, Any] | None = None
    _info_at = -INFO_S
    _plugged_stored: bool | None = None

    @property
    def car(self) -> Car:
        if self._car is None:
            raise RuntimeError("the car simulation is not set up yet")
        return self._car

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def queue(self, job: Job, what: str) -> None:
        self._jobs.put_nowait((job, what))

    async def init(self) -> None:
        cfg = self.config
        self._jobs = asyncio.Queue()
        params = CarParams(
            max_current_A=cfg.max_current,
            three_phases=cfg.three_phases,
            nominal_voltage_V=cfg.ac_nominal_voltage,
            capacity_Wh=float(cfg.dc_energy_capacity),
            soc=float(cfg.soc),
        )
        self._car = Car(_BoardCalls(self), params)
        self._plugin_steps = []
        if cfg.plugin_commands.strip():
            try:
                self._plugin_steps = parse_script(cfg.plugin_commands)
            except ScriptError as err:
                self.log.error("plugin_commands ignored: %s", err)
        self.r.ev_board_support.subscribe("bsp_event", self._on_bsp_event)
        self.r.ev_board_support.subscribe("bsp_measurement", self._on_measurement)
        base = f"everest_external/nodered/{cfg.connector_id}/carsim/cmd/"
        self.mqtt.subscribe(base + "enable", self._on_ext_enable)
        self.mqtt.subscribe(base + "execute_charging_session", self._on_ext_execute)
        self.mqtt.subscribe(base + "modify_charging_session", self._on_ext_modify)
        if len(self.r.ev) or len(self.r.slac):
            self.log.info("ev/slac connections are not used: ISO 15118 commands are not supported yet")

    async def ready(self) -> None:
        self.publish("main", "enabled", False)
        self.spawn(self._work(), "board calls")
        cfg = self.config
        if cfg.auto_enable:
            self._enable(True)
        if cfg.keep_cross_boot_plugin_state:
            await self._restore_plugin_state()
        self.spawn(self._run(), "simulation")
        if cfg.auto_exec:
            try:
                self._execute(cfg.auto_exec_commands, repeat=cfg.auto_exec_infinite)
            except (ScriptError, RuntimeError) as err:
                self.log.error("auto_exec_commands not run: %s", err)

    # -- background work ----------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            job, what = await self._jobs.get()
            try:
                await job()
            except (CommandError, TimeoutError) as err:
                self.log.warning("%s failed: %s", what, err)

    async def _run(self) -> None:
        while True:
            now = self._now()
            runner = self._runner
            if runner is not None:
                runner.tick(now)
                if runner.finished:
                    self.log.info("script finished")
                    self._runner = None
            self.car.tick(now)
            self._publish_info(now)
            self._remember_plugin_state()
            await asyncio.sleep(TICK_S)

    def _publish_info(self, now: float) -> None:
        info = self.car.ev_info()
        if info != self._info and now - self._info_at >= INFO_S:
            self._info, self._info_at = info, now
            self.publish("ev_manager", "ev_info", info)

    # -- what the board reports --------------------------------------------------------------------------
    def _on_bsp_event(self, value: dict[str, Any]) -> None:
        event = value.get("event") if isinstance(value, dict) else None
        if not isinstance(event, str):
            self.log.warning("bsp_event without an event ignored: %r", value)
            return
        self.car.on_bsp_event(event)
        self.publish("ev_manager", "bsp_event", {"event": event})

    def _on_measurement(self, value: dict[str, Any]) -> None:
        try:
            duty = float(value["cp_pwm_duty_cycle"])
        except (KeyError, TypeError, ValueError):
            self.log.warning("bsp_measurement without a usable duty cycle ignored: %r", value)
            return
        self.car.on_measurement(duty)

    # -- enable and scripts ------------------------------------------------------------------------------
    def _enable(self, value: bool) -> None:
        if value == self._enabled:
            return
        self._enabled = value
        if not value:
            self._runner = None
        self.car.enable(value)
        self.publish("main", "enabled", value)
        self.log.info("simulation %s", "enabled" if value else "disabled")

    def _on_step(self, step: Step) -> None:
        self.log.info("step: %s", step)

    def _execute(self, script: str, *, modify: bool = False, repeat: bool = False) -> None:
        """Start ``script`` (after unplugging) or, with ``modify``, replace what is left of the running one."""
        if not self._enabled:
            raise RuntimeError("the car simulation is disabled; enable it first")
        steps = parse_script(script)
        if modify and self._runner is not None:
            self._runner.replace(steps)
            self.log.info("session modified: %s", "; ".join(map(str, steps)))
            return
        if not modify:
            self.car.unplug()
        self._runner = ScriptRunner(
            self.car, steps, repeat=repeat, plugin_steps=self._plugin_steps, on_step=self._on_step
        )
        self.log.info("session started: %s", "; ".join(map(str, steps)))

    @command("main")
    def enable(self, value: bool) -> None:
        self._enable(value)

    @command("main")
    def execute_charging_session(self, value: str) -> None:
        self._execute(value)

    # -- external MQTT (EVerest's SIL tooling) ---------------------------------------------------------
    def _on_ext_enable(self, topic: str, payload: str) -> None:
        flag = payload.strip().strip('"').lower()
        if flag not in ("true", "false"):
            self.log.warning("%s: expected true or false, got %r", topic, payload)
            return
        self._enable(flag == "true")

    @staticmethod
    def _script_text(payload: str) -> str:
        text = payload.strip()
        if text.startswith('"'):
            try:
                decoded = json.loads(text)
            except ValueError:
                return text
            if isinstance(decoded, str):
                return decoded
        return text

    def _on_ext_execute(self, topic: str, payload: str) -> None:
        try:
            self._execute(self._script_text(payload))
        except (ScriptError, RuntimeError) as err:
            self.log.error("%s: not run: %s", topic, err)

    def _on_ext_modify(self, topic: str, payload: str) -> None:
        try:
            self._execute(self._script_text(payload), modify=True)
        except (ScriptError, RuntimeError) as err:
            self.log.error("%s: not run: %s", topic, err)

    # -- plug-in state across restarts (keep_cross_boot_plugin_state) ---------------------------------------
    def _kvs_key(self) -> str:
        return "ev_manager." + re.sub(r"[^A-Za-z0-9_]", "_", self.info.id) + ".plugged_in"

    def _remember_plugin_state(self) -> None:
        if not self.config.keep_cross_boot_plugin_state or not len(self.r.kvs):
            return
        plugged = self.car.plugged
        if plugged != self._plugged_stored:
            self._plugged_stored = plugged
            key = self._kvs_key()
            self.queue(lambda: self.r.kvs[0].call_cmd("store", {"key": key, "value": plugged}), "kvs.store")

    async def _restore_plugin_state(self) -> None:
        if not len(self.r.kvs):
            self.log.warning("keep_cross_boot_plugin_state needs a kvs connection")
            return
        try:
            was_plugged = await self.r.kvs.call.load(key=self._kvs_key())
        except (CommandError, TimeoutError) as err:
            self.log.warning("plug-in state not loaded: %s", err)
            return
        self._plugged_stored = was_plugged is True
        if was_plugged is not True or not self._enabled:
            return
        self.log.info("the car was plugged in before the restart")
        if self._plugin_steps:
            self._runner = ScriptRunner(self.car, self._plugin_steps, on_step=self._on_step)
        else:
            self.car.plug_in()
