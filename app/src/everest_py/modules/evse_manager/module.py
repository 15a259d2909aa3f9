# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EvseManager: the bus adapter around the IEC and charger state machines (the only file that talks MQTT)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from everest_py.errors import CommandError
from everest_py.framework.module import Connection, Module, Requirement, command
from everest_py.modules.evse_manager.charger import Charger
from everest_py.modules.evse_manager.clock import AsyncioClock
from everest_py.modules.evse_manager.config import EvseManagerConfig
from everest_py.modules.evse_manager.enable import DISABLE, ENABLE, source
from everest_py.modules.evse_manager.energy import Energy, OverCurrentWatch
from everest_py.modules.evse_manager.errors import WATCHED_REQUIREMENTS, ErrorTracker
from everest_py.modules.evse_manager.iec import CPEvent, IECConfig, IECStateMachine
from everest_py.modules.evse_manager.ports import METER_START_FAILED, BoardPort, ChargerOutputs, LockPort
from everest_py.modules.evse_manager.session import Ev, SessionEvents, get_evse, meter_transaction_request
from everest_py.modules.evse_manager.session_log import SessionLog
from everest_py.modules.evse_manager.states import STATE_STRINGS, ChargerConfig, State

if TYPE_CHECKING:
    from everest_py.framework.runtime import ModuleRuntime

INOPERATIVE = "evse_manager/Inoperative"
OVER_CURRENT = "evse_manager/MREC4OverCurrentFailure"
FLOW_REQUEST_PERIOD_S = 1.0
KVS_TIMEOUT_S = 5.0
EXTERNAL_PRIORITY = 100
STATE_NUMBERS = {state: number for number, state in enumerate(State)}


async def _reraise(err: BaseException) -> None:
    raise err


class EvseManager(Module):
    Config = EvseManagerConfig
    config: EvseManagerConfig

    def __init__(self, runtime: ModuleRuntime) -> None:
        super().__init__(runtime)
        cfg = self.config
        self.live = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.clock = AsyncioClock(self._crash)
        self.tracker = ErrorTracker(cfg.fail_on_powermeter_errors)
        self.session_log = SessionLog(self.clock, cfg.session_logging_path, cfg.logfile_suffix, cfg.session_logging)
        self.grid_meter: dict[str, Any] | None = None
        self.car_meter: dict[str, Any] | None = None
        self._meter_seen = asyncio.Event()
        self._external_ready = asyncio.Event()
        self._last_limits: dict[str, Any] | None = None
        self.random_delay: dict[str, Any] = {
            "enabled": cfg.uk_smartcharging_random_delay_enable,
            "max_duration_s": cfg.uk_smartcharging_random_delay_max_duration,
        }
        self.pnc_configuration: dict[str, Any] = {}
        self.external_derating: dict[str, Any] = {}
        self.iec = IECStateMachine(
            BoardPort(self),
            LockPort(self),
            self.clock,
            self.charger_cp_event,
            IECConfig(cfg.has_ventilation, cfg.lock_connector_in_state_b, cfg.hack_simplified_mode_limit_10A),
            note=lambda text: self.session_log.write("iec", text),
        )
        self.energy = Energy(
            self.clock,
            self.info.id,
            nominal_voltage=cfg.ac_nominal_voltage,
            request_zero_power_in_idle=cfg.request_zero_power_in_idle,
            on_change=self._energy_changed,
        )
        self.overcurrent = OverCurrentWatch(
            self.clock,
            self._over_current_trip,
            tolerance_percent=cfg.soft_over_current_tolerance_percent,
            noise_A=cfg.soft_over_current_measurement_noise_A,
            timeout_ms=cfg.soft_over_current_timeout_ms,
        )
        self.events = SessionEvents(self.clock, cfg.connector_id, self.billing_meter, cfg.session_id_type)
        self.charger = Charger(
            self.iec,
            self.energy,
            self.events,
            ChargerOutputs(self),
            self.clock,
            ChargerConfig(
                disable_authentication=cfg.disable_authentication,
                state_F_after_fault_ms=cfg.state_F_after_fault_ms,
                switch_3ph1ph_delay_s=cfg.switch_3ph1ph_delay_s,
                switch_3ph1ph_cp_state=cfg.switch_3ph1ph_cp_state,
                raise_mrec9=cfg.raise_mrec9,
            ),
        )

    # -- plumbing ---------------------------------------------------------------------------------------------
    def _crash(self, err: BaseException) -> None:
        """Crash-only: an unexpected exception in our own callbacks stops the stack."""
        self.spawn(_reraise(err), "failure")

    def _start_now(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` up to its first await right here (Python 3.12 eager tasks), so a command is on the
        wire before this loop turn ends; on 3.11 it starts on the next turn (see README)."""
        eager: Any = getattr(asyncio, "eager_task_factory", None)
        if eager is None:
            self.spawn(coro, name)
            return
        task: asyncio.Task[Any] = eager(asyncio.get_running_loop(), coro, name=name)
        if task.done():
            self._task_done(task)
            return
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._crash(task.exception())  # type: ignore[arg-type]

    def _fire(
        self, conn: Connection, name: str, args: dict[str, Any], on_result: Callable[[Any], None] | None = None
    ) -> None:
        async def call() -> None:
            try:
                result = await conn.call_cmd(name, args)
            except CommandError as err:
                self.log.warning("%s.%s failed: %s", conn.requirement_id, name, err)
                return
            if on_result is not None:
                on_result(result)

        self._start_now(call(), f"{conn.requirement_id}.{name}")

    def bsp_cmd(self, name: str, **args: Any) -> None:
        self.session_log.write("bsp", {"cmd": name, **args})
        self._fire(self.r.bsp[0], name, args)

    def lock_cmd(self, name: str) -> None:
        self.session_log.write("connector_lock", name)
        if len(self.r.connector_lock):
            self._fire(self.r.connector_lock[0], name, {})

    def publish(self, impl_id: str, var: str, value: Any) -> None:
        if self.live:
            super().publish(impl_id, var, value)

    def _external(self, topic: str, payload: str | bool | int | float) -> None:
        if self.live:
            self.mqtt.publish(f"everest_external/nodered/{self.config.connector_id}/{topic}", payload)

    def billing_meter(self) -> dict[str, Any] | None:
        return self.car_meter if len(self.r.powermeter_car_side) else self.grid_meter

    def _billing_requirement(self) -> Requirement:
        return self.r.powermeter_car_side if len(self.r.powermeter_car_side) else self.r.powermeter_grid_side

    @property
    def _store_key(self) -> str:
        return f"EvseManager_{self.info.id}_session"

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def init(self) -> None:
        bsp = self.r.bsp
        bsp.subscribe("event", lambda v: self.iec.on_bsp_event(str(v.get("event"))))
        bsp.subscribe("capabilities", self._on_capabilities)
        bsp.subscribe("telemetry", self._on_telemetry)
        bsp.subscribe("ac_nr_of_phases_available", lambda v: self.energy.set_phases_available(int(v)))
        bsp.subscribe("ac_pp_ampacity", lambda v: self.energy.set_pp_ampacity(str(v.get("ampacity"))))
        bsp.subscribe("request_stop_transaction", self._on_stop_request)
        if len(self.r.powermeter_grid_side):
            self.r.powermeter_grid_side.subscribe("powermeter", self._on_grid_meter)
        if len(self.r.powermeter_car_side):
            self.r.powermeter_car_side.subscribe("powermeter", self._on_car_meter)
        billing = self._billing_requirement()
        if len(billing):
            billing.subscribe("public_key_ocmf", lambda v: self.publish("evse", "powermeter_public_key_ocmf", str(v)))
        for requirement in self.r:
            if requirement.requirement_id in WATCHED_REQUIREMENTS:
                on_raise, on_clear = self._error_callbacks(requirement.requirement_id)
                requirement.subscribe_error(None, on_raise, on_clear)
        prefix = f"everest_external/nodered/{self.config.connector_id}/cmd/"
        self.mqtt.subscribe(prefix + "+", self._on_external_cmd)

    async def ready(self) -> None:
        self.live = True
        self.publish("evse", "evse_id", self.config.evse_id)
        if self.energy.hw_caps is not None:
            self.publish("evse", "hw_capabilities", self.energy.hw_caps)
        self.publish("evse", "supported_energy_transfer_modes", self._transfer_modes())
        self._publish_limits()
        self._sync_inoperative()
        await self._recover_session()
        self.charger.start()
        self._publish_flow_request(priority=True)
        self.spawn(self._flow_request_loop(), "energy_flow_request")
        self.spawn(self._announce_ready(), "ready")

    async def shutdown(self) -> None:
        self.live = False
        for task in list(self._tasks):
            task.cancel()
        self.session_log.finish()

    # -- inputs from requirements -------------------------------------------------------------------------------
    def charger_cp_event(self, event: CPEvent) -> None:
        self.charger.on_cp_event(event)

    def _on_capabilities(self, caps: dict[str, Any]) -> None:
        self.energy.set_hw_caps(caps)
        self.publish("evse", "hw_capabilities", caps)
        self.publish("evse", "supported_energy_transfer_modes", self._transfer_modes())

    def _on_telemetry(self, telemetry: dict[str, Any]) -> None:
        self.publish("evse", "telemetry", telemetry)
        plug = telemetry.get("plug_temperature_C")
        if isinstance(plug, int | float):
            self.publish("dc_external_derate", "plug_temperature_C", plug)
        temperature = telemetry.get("evse_temperature_C")
        if isinstance(temperature, int | float):
            self._external("state/temperature", float(temperature))

    def _on_grid_meter(self, value: dict[str, Any]) -> None:
        self.grid_meter = value
        if not len(self.r.powermeter_car_side):
            self._billing_value(value)

    def _on_car_meter(self, value: dict[str, Any]) -> None:
        self.car_meter = value
        self._billing_value(value)

    def _billing_value(self, value: dict[str, Any]) -> None:
        self._meter_seen.set()
        self.publish("evse", "powermeter", value)
        if self.live and self.config.charge_mode == "AC":
            self.overcurrent.check(self.charger.signalled_current(), value.get("current_A"))

    def _over_current_trip(self, message: str) -> None:
        self.log.warning("%s", message)
        self.session_log.write("error", message)
        if self.tracker.raise_own(OVER_CURRENT, message):
            self._sync_inoperative()  # power off first
            self.errors("evse").raise_error(OVER_CURRENT, "", message, "High")

    def clear_over_current(self) -> None:
        """Cleared when the session ends (as EVerest clears it on unplug)."""
        if self.tracker.clear_own(OVER_CURRENT):
            self.errors("evse").clear_error(OVER_CURRENT)
            self._sync_inoperative()

    def _error_callbacks(
        self, requirement: str
    ) -> tuple[Callable[[dict[str, Any]], None], Callable[[dict[str, Any]], None]]:
        def on_raise(error: dict[str, Any]) -> None:
            self._on_error(requirement, error, raised=True)

        def on_clear(error: dict[str, Any]) -> None:
            self._on_error(requirement, error, raised=False)

        return on_raise, on_clear

    def _on_stop_request(self, request: dict[str, Any]) -> None:
        self.charger.stop_transaction(request)

    def _on_error(self, requirement: str, error: dict[str, Any], raised: bool) -> None:
        changed = self.tracker.raised(requirement, error) if raised else self.tracker.cleared(requirement, error)
        if changed:
            self.session_log.write("error", {"requirement": requirement, "raised": raised, "type": error.get("type")})
            self._sync_inoperative()

    def _sync_inoperative(self) -> None:
        if not self.live:
            return
        # outputs first (power off), then tell the world
        self.charger.set_inoperative(self.tracker.inoperative)
        handle = self.errors("evse")
        if self.tracker.inoperative:
            handle.raise_error(INOPERATIVE, "", f"caused by {self.tracker.describe()}", "High")
        else:
            handle.clear_error(INOPERATIVE)

    def _on_external_cmd(self, topic: str, payload: str) -> None:
        if not self.live:
            return
        name = topic.rsplit("/", 1)[-1]
        if name == "enable":
            self.charger.enable_disable(0, source("LocalAPI", ENABLE, EXTERNAL_PRIORITY))
        elif name == "disable":
            self.charger.enable_disable(0, source("LocalAPI", DISABLE, EXTERNAL_PRIORITY))
        elif name == "pause_charging":
            self.charger.pause_charging()
        elif name == "resume_charging":
            self.charger.resume_charging()
        elif name == "switch_three_phases_while_charging":
            self.charger.switch_phases(payload.strip().lower() in ("true", "1"))
        else:
            self.log.info("external command %s is not handled", name)

    # -- energy ------------------------------------------------------------------------------------------------
    def _energy_changed(self) -> None:
        self._publish_limits()
        if self.live:
            self.iec.set_overcurrent_limit(self.energy.current_limit())
        self.charger.energy_changed()

    def _publish_limits(self) -> None:
        limits = self.energy.limits()
        if limits == self._last_limits or not self.live:
            return
        self._last_limits = limits
        self.publish("evse", "limits", limits)
        current = float(limits["max_current"])
        self._external("state/max_current", current)
        self._external("state/max_watt", current * self.energy.nominal_voltage * limits["nr_of_phases_available"])

    def _publish_flow_request(self, priority: bool = False) -> None:
        request = self.energy.flow_request(
            self.charger.energy_state,
            idle=self.charger.state in (State.IDLE, State.DISABLED),
            meter=self.grid_meter,
            priority=priority,
        )
        self.publish("energy_grid", "energy_flow_request", request)

    async def _flow_request_loop(self) -> None:
        while True:
            await asyncio.sleep(FLOW_REQUEST_PERIOD_S)
            self._publish_flow_request()

    def _transfer_modes(self) -> list[str]:
        if self.energy.max_phases >= 3:
            return ["AC_single_phase_core", "AC_three_phase_core"]
        return ["AC_single_phase_core"]

    def state_changed(self, state: State) -> None:
        self._external("state/state_string", STATE_STRINGS[state])
        self._external("state/state", STATE_NUMBERS[state])
        if self.live:
            self._publish_flow_request(priority=True)
        if state is State.WAITING_FOR_AUTHENTICATION:
            self.publish("evse", "selected_protocol", "IEC61851-1")

    # -- transactions on the meter, persistence -------------------------------------------------------------------
    def transaction_started(self, session_id: str, id_tag: Mapping[str, Any], validation: Mapping[str, Any]) -> None:
        if len(self.r.store):
            self._fire(self.r.store[0], "store", {"key": self._store_key, "value": session_id})
        billing = self._billing_requirement()
        if not len(billing):
            return
        request = meter_transaction_request(self.config.evse_id, session_id, id_tag, validation)

        def checked(response: Any) -> None:
            if isinstance(response, Mapping) and response.get("status") == "UNEXPECTED_ERROR":
                self.log.error("the powermeter did not start transaction %s: %s", session_id, response.get("error"))
                if self.config.fail_on_powermeter_errors:
                    self.errors("evse").raise_error(METER_START_FAILED, "", str(response.get("error") or ""), "Medium")

        self._fire(billing[0], "start_transaction", {"value": request}, checked)

    def transaction_finished(self, session_id: str) -> None:
        if len(self.r.store):
            self._fire(self.r.store[0], "delete", {"key": self._store_key})
        billing = self._billing_requirement()
        if len(billing):
            self._fire(billing[0], "stop_transaction", {"transaction_id": session_id})

    async def _recover_session(self) -> None:
        """A transaction persisted by an earlier run (power loss, kill -9): close it as PowerLoss."""
        if not len(self.r.store):
            return
        try:
            old = await self.r.store[0].call_cmd("load", {"key": self._store_key}, KVS_TIMEOUT_S)
        except CommandError as err:
            self.log.warning("could not read the persisted session: %s", err)
            return
        if not isinstance(old, str) or not old:
            return
        self.log.info("closing transaction %s of an earlier run (PowerLoss)", old)
        signed: dict[str, Any] = {}
        billing = self._billing_requirement()
        if len(billing):
            with contextlib.suppress(CommandError):
                response = await billing[0].call_cmd("stop_transaction", {"transaction_id": old}, KVS_TIMEOUT_S)
                if isinstance(response, Mapping) and response.get("status") == "OK":
                    signed = dict(response)
        self.publish("evse", "session_event", self.events.event(Ev.SESSION_RESUMED, session_id=old))
        self.publish("evse", "session_event", self.events.transaction_finished("PowerLoss", None, old, signed))
        self.publish("evse", "session_event", self.events.session_finished(old))
        with contextlib.suppress(CommandError):
            await self.r.store[0].call_cmd("delete", {"key": self._store_key}, KVS_TIMEOUT_S)

    async def _announce_ready(self) -> None:
        timeout_ms = self.config.initial_meter_value_timeout_ms
        if len(self._billing_requirement()) and timeout_ms > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._meter_seen.wait(), timeout_ms / 1000.0)
        if self.config.external_ready_to_start_charging:
            self.publish("evse", "waiting_for_external_ready", True)
            await self._external_ready.wait()
            self.publish("evse", "waiting_for_external_ready", False)
        self.publish("evse", "ready", True)

    # -- evse (evse_manager) ------------------------------------------------------------------------------------
    @command("evse")
    def get_evse(self) -> dict[str, Any]:
        return get_evse(self.config.connector_id, self.config.connector_type)

    @command("evse")
    def enable_disable(self, connector_id: int, cmd_source: dict[str, Any]) -> bool:
        return self.charger.enable_disable(connector_id, cmd_source)

    @command("evse")
    def authorize_response(self, provided_token: dict[str, Any], validation_result: dict[str, Any]) -> None:
        self.charger.authorize_response(provided_token, validation_result)

    @command("evse")
    def withdraw_authorization(self) -> None:
        self.charger.withdraw_authorization()

    @command("evse")
    def reserve(self, reservation_id: int) -> bool:
        return self.charger.reserve(reservation_id)

    @command("evse")
    def cancel_reservation(self) -> None:
        self.charger.cancel_reservation()

    @command("evse")
    def pause_charging(self) -> bool:
        return self.charger.pause_charging()

    @command("evse")
    def resume_charging(self) -> bool:
        return self.charger.resume_charging()

    @command("evse")
    def stop_transaction(self, request: dict[str, Any]) -> bool:
        return self.charger.stop_transaction(request)

    @command("evse")
    def force_unlock(self, connector_id: int) -> bool:
        if not len(self.r.connector_lock):
            return False
        return self.iec.force_unlock()

    @command("evse")
    def external_ready_to_start_charging(self) -> bool:
        if not self.config.external_ready_to_start_charging:
            return False
        self._external_ready.set()
        return True

    @command("evse")
    def set_plug_and_charge_configuration(self, plug_and_charge_configuration: dict[str, Any]) -> None:
        self.pnc_configuration = dict(plug_and_charge_configuration)  # kept for HLC; unused in basic charging

    @command("evse")
    def update_allowed_energy_transfer_modes(self, allowed_energy_transfer_modes: list[str]) -> str:
        return "NoHlc"

    # -- energy_grid (energy) ---------------------------------------------------------------------------------
    @command("energy_grid")
    def enforce_limits(self, value: dict[str, Any]) -> None:
        if not self.energy.enforce(value):
            return
        self.publish("evse", "enforced_limits", value)
        target = self.energy.phase_switch_target()
        if target is not None and self.live:
            self.charger.switch_phases(target == 3)

    # -- random_delay (uk_random_delay): accepted, no delay is applied (README) ----------------------------------
    @command("random_delay", "enable")
    def random_delay_enable(self) -> None:
        self.random_delay["enabled"] = True

    @command("random_delay", "disable")
    def random_delay_disable(self) -> None:
        self.random_delay["enabled"] = False

    @command("random_delay", "cancel")
    def random_delay_cancel(self) -> None:
        """No delay ever runs, so there is nothing to cancel."""

    @command("random_delay", "set_duration_s")
    def random_delay_set_duration_s(self, value: int) -> None:
        self.random_delay["max_duration_s"] = value

    # -- dc_external_derate: DC only -------------------------------------------------------------------------
    @command("dc_external_derate")
    def set_external_derating(self, derate: dict[str, Any]) -> None:
        self.external_derating = dict(derate)
