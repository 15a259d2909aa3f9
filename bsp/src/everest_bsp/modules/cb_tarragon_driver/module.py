# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CbTarragonDriver: the bus adapter around the CP core, the relay controller and the PP/RCM inputs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Any

from everest_bsp.tarragon import pp as pp_logic
from everest_bsp.tarragon.cp_core import (
    CpCore,
    CpCoreConfig,
    CpEvent,
    ErrorChanged,
    Glitch,
    IoChanged,
    IoSource,
    OffReason,
    RelaysForcedOff,
    StateChanged,
    TripChanged,
)
from everest_bsp.tarragon.cp_logic import CpError, CpState
from everest_bsp.tarragon.hardware import TarragonHardware, open_hardware, prepare_pwm, with_wait
from everest_bsp.tarragon.relays import R1, R2, Relay, RelayController, Wiring
from everest_py.errors import HardwareError
from everest_py.framework.module import Module, command

BSP = "evse_board_support"
RCD = "ac_rcd"
CP_EVENTS = {CpState.A: "A", CpState.B: "B", CpState.C: "C", CpState.D: "D", CpState.E: "E", CpState.F: "F"}
CP_ERRORS = {
    CpError.SHORT: ("evse_board_support/MREC14PilotFault", "CPShortFault", "control pilot shorted to PE"),
    CpError.DIODE: ("evse_board_support/DiodeFault", "", "the vehicle's pilot diode is missing or shorted"),
    CpError.VENTILATION: (
        "evse_board_support/VentilationNotAvailable",
        "",
        "the vehicle asks for ventilation (state D)",
    ),
    CpError.PILOT: ("evse_board_support/MREC14PilotFault", "CPOutOfRange", "pilot voltage out of every state's range"),
}
OFF_REASONS = {
    1: "pilot left C/D",
    2: "pilot fault",
    3: "pilot output off, E or F",
    4: "RCM trip",
    5: "I/O failure (pilot measurement or output, trip input or relay line)",
}
REFUSALS = {
    1: "the pilot is not in C or D",
    2: "a pilot fault is active",
    3: "the RCM has tripped",
    4: "an I/O access of the pilot, the RCM input or a relay line fails (see the error raised)",
}
# A failing source of the CP core: its name in the log, and the error it raises (impl, type, sub) while
# it fails.  Sources that raise the same error clear it when the last of them works again.
#  - measurement and pilot output: VendorError (stops the session; no MREC code fits a board fault);
#  - trip input: ac_rcd VendorError, the RCM's state is unknown (not a ground fault, MREC2 would lie);
#  - relay line: MREC17EVSEContactorFault, "contactors fail to open or close on the EVSE's side" is
#    exactly what a relay whose coil line cannot be written is (VendorError would hide that a contactor
#    may be stuck closed); High severity like the other contactor faults, but sub type RelayOutput and
#    cleared once the core's retry has opened the relay (the feedback fault, sub type "", stays latched
#    until restart because nothing verifies the contact again).
IO_SOURCES: dict[IoSource, tuple[str, tuple[str, str, str]]] = {
    IoSource.ADC_POS: ("CP+ peak ADC read", (BSP, "evse_board_support/VendorError", "CPMeasurement")),
    IoSource.ADC_NEG: ("CP- peak ADC read", (BSP, "evse_board_support/VendorError", "CPMeasurement")),
    IoSource.RESET: ("peak-detector reset write", (BSP, "evse_board_support/VendorError", "CPMeasurement")),
    IoSource.PWM: ("CP PWM write", (BSP, "evse_board_support/VendorError", "CPOutput")),
    IoSource.INVERT: ("CP_INVERT write", (BSP, "evse_board_support/VendorError", "CPOutput")),
    IoSource.TRIP: ("RCM input read", (RCD, "ac_rcd/VendorError", "RCMInput")),
    IoSource.RELAY: ("relay line write", (BSP, "evse_board_support/MREC17EVSEContactorFault", "RelayOutput")),
}
FEEDBACK_WAIT_S = 0.5


@dataclass(frozen=True)
class TarragonConfig:
    connector_type: str
    min_current_A: float
    max_current_A: float
    contactor_1_feedback_type: str
    contactor_2_feedback_type: str
    switch_3ph1ph_wiring: str
    relay_1_name: str
    relay_1_actuator_gpio_line_name: str
    relay_1_feedback_gpio_line_name: str
    relay_1_feedback_gpio_debounce_us: int
    relay_2_name: str
    relay_2_actuator_gpio_line_name: str
    relay_2_feedback_gpio_line_name: str
    relay_2_feedback_gpio_debounce_us: int
    cp_rst_neg_peak_gpio_line_name: str
    cp_neg_peak_adc_device: str
    cp_neg_peak_adc_channel: str
    cp_rst_pos_peak_gpio_line_name: str
    cp_pos_peak_adc_device: str
    cp_pos_peak_adc_channel: str
    cp_pwm_device: str
    cp_pwmchannel: int
    cp_invert_gpio_line_name: str
    pp_adc_device: str
    pp_adc_channel: str
    rcm_enable: bool
    rcm_fault_gpio_line_name: str
    rcm_fault_active_low: bool
    grid_phase_count_gpio_line_name: str
    grid_phase_count_active_low: bool
    contactor_min_close_interval_s: float
    hal_root: str


class _Relays:
    """RelayPort over the C core (switching) and the line requests (reading)."""

    def __init__(self, hw: TarragonHardware, core: CpCore) -> None:
        self.hw = hw
        self.core = core

    def close(self, mask: int) -> str | None:
        try:
            refused = self.core.relays_on(mask)
        except HardwareError as err:
            # the core has opened every relay and reports the line (IoChanged RELAY): a refusal here
            return str(err)
        return None if refused is None else REFUSALS.get(int(refused), refused.name)

    def open(self, mask: int) -> None:
        # a line that cannot be written is retried by the core every cycle and reported as
        # IoChanged(RELAY) (logged and raised in _on_io); the relay task must not die of it
        with contextlib.suppress(HardwareError):
            self.core.relays_off(mask)

    def actuator(self, index: int) -> bool:
        if index >= len(self.hw.relays):
            return False
        r = self.hw.relays[index]
        return r.actuator.get(r.actuator_line)

    def feedback(self, index: int) -> bool | None:
        if index >= len(self.hw.relays):
            return None
        r = self.hw.relays[index]
        return None if r.feedback is None else r.feedback.get(r.feedback_line)


class CbTarragonDriver(Module):
    Config = TarragonConfig
    config: TarragonConfig

    _hw: TarragonHardware | None = None
    _core: CpCore | None = None
    _relays: RelayController | None = None

    async def init(self) -> None:
        cfg = self.config
        self.cp_state: CpState = CpState.UNKNOWN
        self.enabled = False
        self.tripped = False
        self.ampacity: str | None = None
        self.grid_three_phase = True
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._io_failing: set[IoSource] = set()
        self._power_off_withheld = False
        hw = self._hw = await with_wait(lambda: open_hardware(cfg), self.log)
        prepare_pwm(hw.pwm)
        duty_fd, enable_fd = hw.open_pwm_fds()
        self._core = CpCore(
            CpCoreConfig(
                adc_pos_fd=hw.adc_pos.fileno(),
                adc_neg_fd=hw.adc_neg.fileno(),
                rst_pos=hw.cp.native(hw.rst_pos),
                rst_neg=hw.cp.native(hw.rst_neg),
                cp_invert=hw.cp.native(hw.cp_invert),
                pwm_duty_fd=duty_fd,
                pwm_enable_fd=enable_fd,
                relays=tuple(r.actuator.native(r.actuator_line) for r in hw.relays),
                trip=hw.native(hw.rcm, hw.rcm_line),
            )
        )
        self._core.start()
        asyncio.get_running_loop().add_reader(self._core.fileno(), self._on_core)
        if hw.grid is not None:
            self.grid_three_phase = hw.grid.get(hw.grid_line)
            self.log.info("grid wired for %s", "three phases" if self.grid_three_phase else "one phase")
        wiring = Wiring(cfg.switch_3ph1ph_wiring) if self.grid_three_phase else Wiring.NONE
        present = (True, len(hw.relays) > 1)
        self._relays = RelayController(
            _Relays(hw, self._core),
            (
                Relay(cfg.relay_1_name, present[0], cfg.contactor_1_feedback_type != "none"),
                Relay(cfg.relay_2_name, present[1], present[1] and cfg.contactor_2_feedback_type != "none"),
            ),
            wiring,
            self._on_power,
            self._on_contactor_fault,
            self.log,
            close_spacing_s=float(cfg.contactor_min_close_interval_s),
        )
        loop = asyncio.get_running_loop()
        for index, r in enumerate(hw.relays):
            if r.feedback is not None:
                t = threading.Thread(
                    target=self._watch_feedback, args=(loop, index, r.feedback), name=f"fb-{r.name}", daemon=True
                )
                t.start()
                self._threads.append(t)

    async def ready(self) -> None:
        assert self._relays is not None
        self._publish_capabilities()
        self._relays.check_consistent()
        self.spawn(self._relays.run(), "relays")
        self.spawn(self._relays.supervise(), "contactor supervision")
        if self._hw is not None and self._hw.pp is not None:
            self.spawn(self._poll_pp(), "proximity pilot")

    def safe_state(self) -> None:
        # F first: it opens the relays too and makes the car stop drawing even if a relay line fails
        if self._core is not None:
            for step in (self._core.state_F, lambda: self._core.relays_off(R1 | R2) if self._core else None):
                try:
                    step()
                except Exception:  # every step of the safe state must be tried
                    self.log.exception("safe state step failed")

    async def shutdown(self) -> None:
        self._stop.set()
        if self._core is not None:
            asyncio.get_running_loop().remove_reader(self._core.fileno())
            self._core.close()
        for t in self._threads:
            t.join(timeout=2 * FEEDBACK_WAIT_S)
        if self._hw is not None:
            self._hw.close()

    # -- from the C core ---------------------------------------------------------------------------
    def _on_core(self) -> None:
        assert self._core is not None
        for ev in self._core.events():
            self._core_event(ev)

    def _core_event(self, ev: CpEvent) -> None:
        if isinstance(ev, StateChanged):
            self._on_state(ev)
        elif isinstance(ev, ErrorChanged):
            error_type, sub, text = CP_ERRORS[ev.error]
            if ev.active:
                self._raise(BSP, error_type, sub, f"{text} ({ev.u_pos_mV} mV / {ev.u_neg_mV} mV)")
            elif self.errors(BSP).clear_error(error_type, sub):
                self.log.info("cleared %s %s", error_type, sub)
        elif isinstance(ev, RelaysForcedOff):
            # the car leaving C is the normal end of charging; anything else is a fault reaction
            log = self.log.info if ev.reason == OffReason.STATE else self.log.warning
            log("relays opened by the CP core: %s", OFF_REASONS.get(int(ev.reason), ev.reason))
            if self._relays is not None:
                self._relays.forced_off(ev.mask)
        elif isinstance(ev, TripChanged):
            self._on_trip(ev.active)
        elif isinstance(ev, Glitch):
            log = self.log.warning if self.enabled else self.log.debug
            log("CP glitch suppressed on the %s side (a single %s)", ev.side.name.lower(), ev.suppressed.name)
        elif isinstance(ev, IoChanged):
            self._on_io(ev)

    def _on_state(self, ev: StateChanged) -> None:
        state = ev.state
        self.cp_state = state
        self.log.info("CP %s -> %s (%d mV / %d mV)", ev.previous.name, state.name, ev.u_pos_mV, ev.u_neg_mV)
        if state == CpState.A:
            self.errors(BSP).clear_error("evse_board_support/MREC23ProximityFault", "PlugRemoval")
        elif state in (CpState.C, CpState.D) and self.ampacity == "None":
            self._raise(BSP, "evse_board_support/MREC23ProximityFault", "PlugRemoval", "no cable while charging")
        name = CP_EVENTS.get(state)
        if name is not None:
            self.publish(BSP, "event", {"event": name})

    def _on_io(self, ev: IoChanged) -> None:
        what, error = IO_SOURCES[ev.source]
        impl, error_type, sub = error
        if ev.failed:
            if ev.source not in self._io_failing:
                self._io_failing.add(ev.source)
                if ev.source == IoSource.RELAY:
                    consequence = "a relay may still be closed; the CP core writes it off every cycle"
                else:
                    consequence = "relays open"
                self.log.error("%s failed: %s (%s, power-on blocked)", what, os.strerror(ev.errno), consequence)
            self._raise(impl, error_type, sub, f"{what}: {os.strerror(ev.errno)}")
            return
        self._io_failing.discard(ev.source)
        self.log.info("%s works again", what)
        if not any(IO_SOURCES[s][1] == error for s in self._io_failing) and self.errors(impl).clear_error(
            error_type, sub
        ):
            self.log.info("cleared %s %s", error_type, sub)
        if ev.source == IoSource.RELAY and self._power_off_withheld:
            self._on_power(False)  # every relay line is 0 now

    def _on_trip(self, active: bool) -> None:
        self.tripped = active
        if active:
            self.log.error("RCM tripped: relays open, power-on blocked")
            self._raise(RCD, "ac_rcd/MREC2GroundFailure", "", "residual current monitor tripped")
        elif self.errors(RCD).clear_error("ac_rcd/MREC2GroundFailure"):
            self.log.info("RCM released")

    def _raise(self, impl: str, error_type: str, sub: str, message: str) -> None:
        severity = "High" if "ContactorFault" in error_type or "GroundFailure" in error_type else "Medium"
        if self.errors(impl).raise_error(error_type, sub, message, severity):
            self.log.warning("raised %s %s: %s", error_type, sub, message)

    # -- relays ------------------------------------------------------------------------------------
    def _on_power(self, on: bool) -> None:
        if not on and self._relay_line_failing():
            # PowerOff tells EvseManager that no power flows (it unlocks the connector after it): not
            # while a relay line could not be written to 0; published once the core's retry worked
            if not self._power_off_withheld:
                self.log.error("PowerOff withheld: a relay line could not be opened yet")
            self._power_off_withheld = True
            return
        self._power_off_withheld = False
        self.publish(BSP, "event", {"event": "PowerOn" if on else "PowerOff"})

    def _relay_line_failing(self) -> bool:
        # the core's own state, not the events: the failure of an open just asked for is not read yet
        try:
            return self._core is not None and bool(self._core.stats().io_faults & IoSource.RELAY.mask)
        except HardwareError:  # closed at shutdown
            return False

    def _on_contactor_fault(self, reason: str) -> None:
        self._raise(BSP, "evse_board_support/MREC17EVSEContactorFault", "", reason)

    def _watch_feedback(self, loop: asyncio.AbstractEventLoop, index: int, request: Any) -> None:
        while not self._stop.is_set():
            try:
                if not request.wait_edge_events(FEEDBACK_WAIT_S):
                    continue
                events = request.read_edge_events()
            except Exception as err:  # noqa: BLE001 - a dead watcher must be reported, not silent
                self.log.error("feedback watcher %d stopped: %s", index + 1, err)
                return
            self.log.debug("feedback %d: %s", index + 1, events)
            if events and self._relays is not None:
                loop.call_soon_threadsafe(self._relays.feedback_changed, index)

    # -- proximity pilot -----------------------------------------------------------------------------
    async def _poll_pp(self) -> None:
        assert self._hw is not None and self._hw.pp is not None
        adc = self._hw.pp
        while True:
            try:
                raw = await asyncio.to_thread(adc.read_raw)
            except Exception as err:  # noqa: BLE001
                self.log.error("PP read failed: %s", err)
                await asyncio.sleep(pp_logic.PP_POLL_S)
                continue
            value = pp_logic.ampacity(raw)
            if value is None:
                self._raise(
                    BSP,
                    "evse_board_support/MREC23ProximityFault",
                    "MeasurementError",
                    f"PP voltage {pp_logic.pp_mV(raw)} mV is below every cable coding",
                )
            else:
                self.errors(BSP).clear_error("evse_board_support/MREC23ProximityFault", "MeasurementError")
                if value != self.ampacity:
                    self.ampacity = value
                    self.log.info("cable ampacity %s", value)
                    if self.enabled:
                        self.publish(BSP, "ac_pp_ampacity", {"ampacity": value})
                    if value == "None" and self.cp_state in (CpState.C, CpState.D):
                        self._raise(
                            BSP,
                            "evse_board_support/MREC23ProximityFault",
                            "PlugRemoval",
                            "cable removed while charging",
                        )
            await asyncio.sleep(pp_logic.PP_POLL_S)

    # -- capabilities ----------------------------------------------------------------------------------
    def _publish_capabilities(self) -> None:
        cfg = self.config
        phases = 3 if self.grid_three_phase else 1
        switching = cfg.switch_3ph1ph_wiring != "none" and phases == 3
        caps = {
            "max_current_A_import": float(cfg.max_current_A),
            "min_current_A_import": float(cfg.min_current_A),
            "max_phase_count_import": phases,
            "min_phase_count_import": 1 if switching else phases,
            "max_current_A_export": float(cfg.max_current_A),
            "min_current_A_export": float(cfg.min_current_A),
            "max_phase_count_export": phases,
            "min_phase_count_export": 1 if switching else phases,
            "supports_changing_phases_during_charging": switching,
            "supports_cp_state_E": True,
            "connector_type": cfg.connector_type,
        }
        self.publish(BSP, "capabilities", caps)
        self.publish(BSP, "ac_nr_of_phases_available", phases)

    # -- evse_board_support ------------------------------------------------------------------------
    @property
    def core(self) -> CpCore:
        if self._core is None:
            raise RuntimeError("the CP core is not running")
        return self._core

    @command(BSP)
    def enable(self, value: bool) -> None:
        self.enabled = bool(value)
        self.core.enable(self.enabled)
        self.log.info("%s", "enabled" if value else "disabled (state F)")
        if value:
            self._publish_capabilities()
            if self.ampacity is not None:
                self.publish(BSP, "ac_pp_ampacity", {"ampacity": self.ampacity})

    @command(BSP)
    def pwm_on(self, value: float) -> None:
        duty = float(value)
        amps = duty * 0.6 if duty < 85 else (duty - 64) * 2.5
        self.log.info("PWM %.1f %% (%.1f A)", duty, amps)
        self.core.set_duty(round(duty * 100))

    @command(BSP)
    def cp_state_X1(self) -> None:
        self.log.info("X1 (PWM off, +12 V)")
        self.core.state_X1()

    @command(BSP)
    def cp_state_F(self) -> None:
        self.log.info("state F")
        self.core.state_F()

    @command(BSP)
    def cp_state_E(self) -> None:
        self.log.info("state E")
        self.core.state_E()

    @command(BSP)
    def allow_power_on(self, value: dict[str, Any]) -> None:
        assert self._relays is not None
        on = bool(value["allow_power_on"])
        if on:
            refused = None
            if self.tripped:
                refused = "the RCM has tripped"
            elif self.cp_state == CpState.PILOT_FAULT:
                refused = "pilot fault"
            if refused is not None:
                self.log.error("power-on refused: %s", refused)
                return
        refused = self._relays.request(on)
        if refused is not None:
            self.log.error("power-on refused: %s", refused)
        else:
            self.log.info("power %s requested (%s)", "on" if on else "off", value.get("reason", ""))

    @command(BSP)
    def ac_switch_three_phases_while_charging(self, value: bool) -> None:
        assert self._relays is not None
        self._relays.three_phase = bool(value)
        self.log.info("next closing uses %s", "three phases" if value else "one phase")

    @command(BSP)
    def ac_set_overcurrent_limit_A(self, value: float) -> None:
        self.log.debug("overcurrent limit %.1f A ignored: the Tarragon has no overcurrent trip", value)

    # -- ac_rcd ----------------------------------------------------------------------------------
    @command(RCD)
    def self_test(self) -> None:
        self.log.info("RCM self test requested: the external RCM tests itself")

    @command(RCD)
    def reset(self) -> bool:
        return not self.tripped
