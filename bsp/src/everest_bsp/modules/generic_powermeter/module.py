# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""GenericPowermeter: the bus adapter; polls the meter through the hub, publishes, raises the fault."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from everest_bsp.modules.generic_powermeter.meter import Change, FaultState, Meter, ReadFailed, describe
from everest_bsp.modules.generic_powermeter.model import find_model, load_model
from everest_bsp.modules.generic_powermeter.registers import Read, plan
from everest_bsp.modules.generic_powermeter.transactions import TransactionBook
from everest_py.errors import CommandError
from everest_py.framework import wire
from everest_py.framework.module import Module, command

if TYPE_CHECKING:
    from everest_py.framework.runtime import ModuleRuntime

POLL_PERIOD_S = 1.0  # EVerest's GenericPowermeter reads about once a second
READ_TIMEOUT_S = 30.0  # the hub answers within its own timeouts; this only covers a hub that is gone
FAULT = "generic/CommunicationFault"

READ_COMMANDS = {3: "modbus_read_holding_registers", 4: "modbus_read_input_registers"}


@dataclass(frozen=True)
class MeterConfig:
    model: str
    powermeter_device_id: int
    modbus_base_address: int


class GenericPowermeter(Module):
    """Polls from ready() on; a model that cannot be used stops the stack at init (ConfigError)."""

    ImplConfigs = {"main": MeterConfig}

    def __init__(self, runtime: ModuleRuntime) -> None:
        super().__init__(runtime)
        self.meter: Meter | None = None  # set by init(); commands may come in before
        self.fault = FaultState()
        self.book = TransactionBook()

    async def init(self) -> None:
        cfg: MeterConfig = self.impl_config["main"]
        path = find_model(cfg.model)
        self.meter = Meter(plan(load_model(path), cfg.modbus_base_address), meter_id=self.info.id)
        p = self.meter.plan
        self.log.info(
            "model %s: %d values in %d read(s) of %d register(s), device %d",
            path.name,
            len(p.fields),
            len(p.reads),
            p.registers,
            cfg.powermeter_device_id,
        )

    async def ready(self) -> None:
        self.spawn(self._poll_forever(), "poll")

    async def _poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await self.poll_once()
            await asyncio.sleep(max(0.0, POLL_PERIOD_S - (loop.time() - began)))

    async def poll_once(self) -> None:
        assert self.meter is not None
        result = await self.meter.poll(self._read, wire.timestamp)
        if result.value is not None:
            self.publish("main", "powermeter", result.value)
        change = self.fault.update(result.value is not None)
        errors = self.errors("main")
        if change is Change.RAISE:
            self.log.error("the meter does not answer: %s", result.problem)
            errors.raise_error(FAULT, "", f"the meter does not answer: {result.problem}", "Medium")
        elif change is Change.CLEAR:
            self.log.info("the meter answers again")
            errors.clear_error(FAULT)
        elif result.value is None:
            self.log.debug("poll failed: %s", result.problem)

    async def _read(self, read: Read) -> list[int]:
        cfg: MeterConfig = self.impl_config["main"]
        name = READ_COMMANDS[read.function_code]
        args = {
            "target_device_id": cfg.powermeter_device_id,
            "first_register_address": read.address,
            "num_registers_to_read": read.count,
        }
        try:
            answer = await self.r.serial_comm_hub.call_cmd(name, args, READ_TIMEOUT_S)
        except CommandError as err:
            raise ReadFailed(f"the hub failed: {err}") from err
        if not isinstance(answer, dict) or answer.get("status_code") != "Success":
            status = answer.get("status_code") if isinstance(answer, dict) else answer
            raise ReadFailed(f"the hub answered {status}")
        values = answer.get("value")
        if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
            raise ReadFailed(f"the hub sent no registers for {describe(read)}")
        return values

    def _last(self) -> dict[str, Any] | None:
        return self.meter.last if self.meter is not None else None

    @command("main")
    def start_transaction(self, value: dict[str, Any]) -> dict[str, Any]:
        response = self.book.start(value, self._last(), wire.timestamp())
        self.log.info("start_transaction: %s", response["error"])
        return response

    @command("main")
    def stop_transaction(self, transaction_id: str) -> dict[str, Any]:
        response = self.book.stop(transaction_id, self._last())
        self.log.info("stop_transaction: %s", response["error"])
        return response
