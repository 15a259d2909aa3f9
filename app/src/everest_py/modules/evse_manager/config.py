# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The module config of EvseManager: every key of the manifest, with EVerest's names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvseManagerConfig:
    """Built by the framework from the validated run config (all defaults filled in)."""

    connector_id: int
    connector_type: str = "Unknown"
    evse_id: str = "DE*PNX*E1234567*1"
    evse_id_din: str = "49A80737A45678"
    payment_enable_eim: bool = True
    payment_enable_contract: bool = True
    ac_nominal_voltage: float = 230.0
    ev_receipt_required: bool = False
    session_logging: bool = False
    session_logging_path: str = "/tmp"  # noqa: S108 - EVerest's default
    session_logging_xml: bool = True
    has_ventilation: bool = True
    charge_mode: str = "AC"
    supported_iso_ac_bpt: bool = False
    ac_hlc_enabled: bool = False
    ac_hlc_use_5percent: bool = True
    ac_enforce_hlc: bool = False
    ac_with_soc: bool = False
    internal_over_voltage_duration_ms: int = 400
    dbg_hlc_auth_after_tstep: bool = False
    dc_isolation_voltage_V: int = 0
    cable_check_wait_number_of_imd_measurements: int = 1
    cable_check_enable_imd_self_test: bool = True
    cable_check_enable_imd_self_test_relays_open: bool = False
    cable_check_relays_open_voltage_V: int = 48
    cable_check_relays_closed_timeout_s: int = 5
    cable_check_wait_below_60V_before_finish: bool = True
    hack_skoda_enyaq: bool = False
    hack_present_current_offset: int = 0
    hack_pause_imd_during_precharge: bool = False
    hack_allow_bpt_with_iso2: bool = False
    hack_simplified_mode_limit_10A: bool = False
    autocharge_use_slac_instead_of_hlc: bool = False
    enable_autocharge: bool = False
    logfile_suffix: str = "session_uuid"
    soft_over_current_tolerance_percent: float = 10.0
    soft_over_current_measurement_noise_A: float = 0.5
    hack_fix_hlc_integer_current_requests: bool = False
    disable_authentication: bool = False
    sae_j2847_2_bpt_enabled: bool = False
    sae_j2847_2_bpt_mode: str = "V2G"
    request_zero_power_in_idle: bool = False
    external_ready_to_start_charging: bool = False
    uk_smartcharging_random_delay_enable: bool = False
    uk_smartcharging_random_delay_max_duration: int = 600
    uk_smartcharging_random_delay_at_any_change: bool = True
    initial_meter_value_timeout_ms: int = 5000
    switch_3ph1ph_delay_s: int = 10
    switch_3ph1ph_cp_state: str = "X1"
    soft_over_current_timeout_ms: int = 7000
    lock_connector_in_state_b: bool = True
    state_F_after_fault_ms: int = 300
    fail_on_powermeter_errors: bool = True
    raise_mrec9: bool = False
    sleep_before_enabling_pwm_hlc_mode_ms: int = 500
    central_contract_validation_allowed: bool = False
    contract_certificate_installation_enabled: bool = True
    inoperative_error_use_vendor_id: bool = False
    voltage_plausibility_max_spread_threshold_V: float = 50.0
    voltage_plausibility_fault_duration_ms: int = 30000
    session_id_type: str = "UUID"
    zero_power_ignore_pause: bool = True
    zero_power_allow_ev_to_ignore_pause: bool = False
    bpt_channel: str = "None"
    bpt_generator_mode: str = "None"
    bpt_grid_code_island_method: str = "None"
    hlc_charge_loop_without_energy_timeout_s: int = 5
    dc_ramp_ampere_per_second: int = 25
