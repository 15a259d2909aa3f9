# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""TarragonSimulator: the bus adapter of the simulated Charge Control C (car side in, car's view out)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from everest_bsp.modules.tarragon_simulator import injection, tree
from everest_bsp.sim.board import BoardConfig, BoardState, InjectionError, TarragonBoardSim
from everest_bsp.sim.lock import LockMotorSim
from everest_bsp.sim.meter import SimMeter
from everest_py.framework.module import Module, command

if TYPE_CHECKING:
    from everest_py.framework.runtime import ModuleRuntime

TICK_S = 0.05  # how often the car's view of the board is checked for changes
MEASUREMENT_S = 1.0  # bsp_measurement at least this often
AMPACITY = {None: "None", 13: "A_13", 20: "A_20", 32: "A_32", 63: "A_63_3ph_70_1ph"}


@dataclass(frozen=True)
class TarragonSimConfig:
    hal_root: str
    relay_1_feedback: str
    relay_2_feedback: str
    relay_pull_in_ms: float
    relay_drop_out_ms: float
    switch_3ph1ph_wiring: str
    rcm_gpio_line_name: str
    rcm_active_low: bool
    rcm_trip_mA: float
    grid_phase_count_gpio_line_name: str
    grid_phase_count_active_low: bool
    grid_phases: int
    grid_voltage_V: float
    grid_frequency_Hz: float
    pp_ampacity_A: int
    plug_lock: bool
    meter_port: str
    meter_device_id: int
    noise_counts: int
    noise_seed: int
    step_period_ms: float

    def board(self) -> BoardConfig:
        return BoardConfig(
            relay_feedback=(self.relay_1_feedback, self.relay_2_feedback),
            relay_pull_in_ms=self.relay_pull_in_ms,
            relay_drop_out_ms=self.relay_drop_out_ms,
            switch_3ph1ph_wiring=self.switch_3ph1ph_wiring,
            rcm_line=self.rcm_gpio_line_name,
            rcm_active_low=self.rcm_active_low,
            rcm_trip_mA=self.rcm_trip_mA,
            grid_phase_count_line=self.grid_phase_count_gpio_line_name,
            grid_phase_count_active_low=self.grid_phase_count_active_low,
            grid_phases=self.grid_phases,
            grid_voltage_V=self.grid_voltage_V,
            grid_frequency_Hz=self.grid_frequency_Hz,
            pp_ampacity_A=self.pp_ampacity_A or None,
            noise_counts=self.noise_counts,
            seed=self.noise_seed,
        )


def measurement(state: BoardState) -> dict[str, Any]:
    """/board_support_common#/BspMeasurement as the car measures it."""
    pp = state.pp_ampacity
    return {
        "cp_pwm_duty_cycle": round(state.car_duty_percent, 2),
        "proximity_pilot": {"ampacity": "None" if isinstance(pp, str) else AMPACITY[pp]},
        "rcd_current_mA": round(state.residual_mA, 3),
    }


class TarragonSimulator(Module):
    """The tree is built when the module is made, before any driver's ``init`` looks for its lines."""

    Config = TarragonSimConfig
    config: TarragonSimConfig

    def __init__(self, runtime: ModuleRuntime) -> None:
        super().__init__(runtime)
        cfg = self.config
        self.tree = tree.build(cfg.hal_root)
        try:
            lock = LockMotorSim(self.tree) if cfg.plug_lock else None
            self.board = TarragonBoardSim(self.tree, cfg.board(), lock=lock)
        except BaseException:
            self.tree.remove()
            raise
        self.meter: SimMeter | None = None
        self._view: tuple[str, bool] | None = None
        self._measurement: dict[str, Any] | None = None
        self.log.info("simulated Tarragon at %s", cfg.hal_root)

    async def init(self) -> None:
        self.board.start(self.config.step_period_ms / 1000)
        if self.config.meter_port:
            # started from the loop's thread: socat dies with it (PR_SET_PDEATHSIG), not with a worker
            self.meter = SimMeter(self.board.meter_values, self.config.meter_port, self.config.meter_device_id).start()
            self.log.info("simulated SDM630 meter (id %d) on %s", self.config.meter_device_id, self.config.meter_port)
        self.mqtt.subscribe(f"everest_external/tarragon_sim/{self.info.id}/inject", self._on_injection)

    async def ready(self) -> None:
        self.spawn(self._run(), "car view")

    async def shutdown(self) -> None:
        if self.meter is not None:
            self.meter.stop()
        self.board.close()
        self.tree.remove()

    # -- the car's view -------------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_measurement = loop.time()
        while True:
            if self.board.error is not None:
                raise RuntimeError(f"the board simulation failed: {self.board.error!r}")
            state = self.board.state()
            self._publish_view(state)
            now = loop.time()
            values = measurement(state)
            if values != self._measurement or now >= next_measurement:
                self._measurement = values
                self.publish("ev_board_support", "bsp_measurement", values)
                next_measurement = now + MEASUREMENT_S
            await asyncio.sleep(TICK_S)

    def _publish_view(self, state: BoardState) -> None:
        view = (state.car_view, state.live_phases > 0)
        last = self._view
        self._view = view
        if last is None or view[0] != last[0]:
            self.publish("ev_board_support", "bsp_event", {"event": view[0]})
        if last is None or view[1] != last[1]:
            self.publish("ev_board_support", "bsp_event", {"event": "PowerOn" if view[1] else "PowerOff"})

    # -- injections -----------------------------------------------------------------------------------
    def _inject(self, name: str, value: Any) -> None:
        self.board.inject(name, value)
        self.log.info("%s = %r", name, value)

    def _on_injection(self, topic: str, payload: str) -> None:
        try:
            inj = injection.parse(payload)
            self._inject(inj.name, inj.value)
        except (ValueError, InjectionError) as err:
            self.log.warning("%s: ignored: %s", topic, err)

    # -- ev_board_support -----------------------------------------------------------------------------
    @command("ev_board_support")
    def enable(self, value: bool) -> None:
        self._inject("car_enabled", bool(value))

    @command("ev_board_support")
    def set_cp_state(self, cp_state: str) -> None:
        self._inject("car_state", cp_state)

    @command("ev_board_support")
    def allow_power_on(self, value: bool) -> None:
        self._inject("car_power_allowed", bool(value))

    @command("ev_board_support")
    def diode_fail(self, value: bool) -> None:
        self._inject("diode_fault", bool(value))

    @command("ev_board_support")
    def set_ac_max_current(self, current: float) -> None:
        self._inject("car_max_current_A", max(0.0, float(current)))

    @command("ev_board_support")
    def set_three_phases(self, three_phases: bool) -> None:
        self._inject("car_phases", 3 if three_phases else 1)

    @command("ev_board_support")
    def set_rcd_error(self, rcd_current_mA: float) -> None:
        self._inject("rcm_current_mA", max(0.0, float(rcd_current_mA)))
