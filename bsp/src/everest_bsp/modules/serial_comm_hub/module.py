# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""SerialCommHub: the bus adapter; each command of serial_communication_hub becomes one transfer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from everest_bsp.modules.serial_comm_hub.link import (
    FC_READ_HOLDING,
    FC_READ_INPUT,
    ModbusLink,
    Outcome,
    Status,
    quiet_pymodbus,
    settings_from,
)
from everest_py.framework.module import Module, command

if TYPE_CHECKING:
    from everest_py.framework.runtime import ModuleRuntime


@dataclass(frozen=True)
class HubConfig:
    serial_port: str
    baudrate: int
    parity: int
    rtscts: bool
    ignore_echo: bool
    rxtx_gpio_chip: str
    rxtx_gpio_line: int
    rxtx_gpio_tx_high: bool
    max_packet_size: int
    initial_timeout_ms: int
    within_message_timeout_ms: int
    retries: int


def result(outcome: Outcome) -> dict[str, Any]:
    """serial_comm_hub_requests#/Result (or ResultBool): values only on success."""
    if outcome.ok:
        return {"status_code": str(outcome.status), "value": list(outcome.values)}
    return {"status_code": str(outcome.status)}


class SerialCommHub(Module):
    """Opens the port lazily: a port that is missing at start is retried on every transfer."""

    ImplConfigs = {"main": HubConfig}

    def __init__(self, runtime: ModuleRuntime) -> None:
        super().__init__(runtime)
        # made here, not in init(): commands may come in while init() runs
        self.link = ModbusLink(settings_from(self.impl_config["main"]), self.log)

    async def init(self) -> None:
        cfg: HubConfig = self.impl_config["main"]
        quiet_pymodbus()
        if cfg.rxtx_gpio_chip:
            self.log.warning(
                "rxtx_gpio_chip '%s' is ignored: everest-py does not switch the transceiver through a GPIO; "
                "use the UART's RS-485 mode of the kernel (the device tree's rs485-rts-* properties) instead",
                cfg.rxtx_gpio_chip,
            )
        self.log.info(
            "Modbus RTU on %s, %d baud, parity %s, %.0f ms per attempt, %d retries",
            cfg.serial_port,
            cfg.baudrate,
            "NOE"[cfg.parity],
            self.link.settings.timeout_s * 1000,
            cfg.retries,
        )
        problem = await self.link.check()
        if problem:
            self.log.warning("%s; every transfer tries to open it again", problem)

    async def shutdown(self) -> None:
        await self.link.close()

    @command("main")
    async def modbus_read_holding_registers(
        self, target_device_id: int, first_register_address: int, num_registers_to_read: int
    ) -> dict[str, Any]:
        return result(
            await self.link.read_registers(
                FC_READ_HOLDING, target_device_id, first_register_address, num_registers_to_read
            )
        )

    @command("main")
    async def modbus_read_input_registers(
        self, target_device_id: int, first_register_address: int, num_registers_to_read: int
    ) -> dict[str, Any]:
        return result(
            await self.link.read_registers(
                FC_READ_INPUT, target_device_id, first_register_address, num_registers_to_read
            )
        )

    @command("main")
    async def modbus_write_multiple_registers(
        self, target_device_id: int, first_register_address: int, data_raw: dict[str, Any]
    ) -> str:
        values = data_raw.get("data") if isinstance(data_raw, dict) else None
        if not isinstance(values, list) or not values:
            return str(Status.ERROR)
        outcome = await self.link.write_registers(target_device_id, first_register_address, values)
        return str(outcome.status)

    @command("main")
    async def modbus_write_single_register(self, target_device_id: int, register_address: int, data: int) -> str:
        return str((await self.link.write_register(target_device_id, register_address, data)).status)

    @command("main")
    async def modbus_read_coils(
        self, target_device_id: int, first_coil_address: int, num_coils_to_read: int
    ) -> dict[str, Any]:
        return result(await self.link.read_coils(target_device_id, first_coil_address, num_coils_to_read))

    @command("main")
    async def modbus_write_single_coil(self, target_device_id: int, coil_address: int, data: bool) -> str:
        return str((await self.link.write_coil(target_device_id, coil_address, data)).status)

    # The two non-standard commands serve one isolation monitor (GYDCG-UBC1); EVerest's hub does
    # not carry them out either: the write does nothing, the read answers Error.
    @command("main")
    def nonstd_write(self, target_device_id: int, first_register_address: int, num_registers_to_read: int) -> None:
        self.log.debug("nonstd_write to device %d ignored (not supported)", target_device_id)

    @command("main")
    def nonstd_read(
        self, target_device_id: int, first_register_address: int, num_registers_to_read: int
    ) -> dict[str, Any]:
        self.log.debug("nonstd_read from device %d refused (not supported)", target_device_id)
        return {"status_code": str(Status.ERROR)}
