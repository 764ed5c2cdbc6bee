"""Energy meters read over Modbus (pymodbus): Eastron SDM630 and SDM120, and SunSpec inverters.

Eastron meters keep their measurements in input registers (function code 4) as IEEE-754 float32,
high word first. Addresses are the 0-based protocol addresses (the manuals' 30053 is 52):

- SDM630: total system power 0x34 (30053), phase 1..3 power 0x0C/0x0E/0x10 (30013..30017),
  total import 0x48 (30073, kWh), total export 0x4A (30075, kWh).
- SDM120: active power 0x0C (30013), import 0x48 (30073, kWh), export 0x4A (30075, kWh).

Checked against Eastron's maps as carried in public code: reaper7/SDM_Energy_Meter ``SDM.h``,
merlokk/SmartHome ``lib/eastron.h`` and spjakob/ha-modbus_devices
``sdm630_modbus_registers_main_branch.md`` (total power 52, import 72, export 74).

A SunSpec device starts with "SunS" (0x5375, 0x6E53) at 40000 (or 0, or 50000), then a chain of
models, each ``ID, L`` and ``L`` registers. The inverter models 101/102/103 carry the AC power
``W`` (int16) at offset 14 and its scale factor ``W_SF`` at 15, counting from the ID: power is
``W * 10**W_SF`` (SunSpec models JSON; 40084 in Fronius's 1-based numbering with model 103 at
40070). The chain is walked, not assumed, since the common model's length differs by vendor.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from firmware.site_config import ModbusMeterConfig


class MeterError(Exception):
    """The meter did not give a usable reading (no answer, an exception code, nonsense)."""


@dataclass(frozen=True, slots=True)
class EastronMap:
    model: str
    power: int
    import_kwh: int
    export_kwh: int


SDM630 = EastronMap("sdm630", power=0x34, import_kwh=0x48, export_kwh=0x4A)
SDM120 = EastronMap("sdm120", power=0x0C, import_kwh=0x48, export_kwh=0x4A)
EASTRON = {m.model: m for m in (SDM630, SDM120)}
SDM630_PHASE_POWER = (0x0C, 0x0E, 0x10)

SUNSPEC_MARKER = (0x5375, 0x6E53)  # "SunS"
SUNSPEC_INVERTERS = (101, 102, 103)
SUNSPEC_END = 0xFFFF
SUNSPEC_W = 14
SUNSPEC_W_SF = 15
INT16_NOT_IMPLEMENTED = 0x8000


def float32_to_registers(value: float) -> list[int]:
    """Two registers, high word first, as an Eastron meter holds a float."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


def registers_to_float32(registers: Sequence[int]) -> float:
    if len(registers) != 2:
        raise MeterError(f"expected 2 registers for a float, got {len(registers)}")
    value: float = struct.unpack(">f", struct.pack(">HH", registers[0], registers[1]))[0]
    if value != value or abs(value) > 1e7:  # NaN or absurd: a register map that does not fit
        raise MeterError(f"implausible reading {value!r}")
    return value


def int16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


class Meter(Protocol):
    """A power reading in watts: site import (negative: export), or solar production."""

    description: str

    async def read_w(self) -> float: ...

    async def aclose(self) -> None: ...


class ModbusMeter:
    """One meter on Modbus TCP or RTU; each read is one request, with the configured timeout."""

    def __init__(self, config: ModbusMeterConfig) -> None:
        self.config = config
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if config.host is not None:
            self.client = AsyncModbusTcpClient(
                config.host,
                port=config.port,
                timeout=config.timeout_s,
                retries=0,
                reconnect_delay=0,  # reconnect from the poll, on the station's clock
            )
            where = f"{config.host}:{config.port}"
        else:
            if config.serial_port is None:
                raise ValueError("a Modbus meter needs a host or a serial port")
            self.client = AsyncModbusSerialClient(
                config.serial_port,
                baudrate=config.baudrate,
                timeout=config.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
            where = config.serial_port
        self.description = f"{config.meter} at {where} (device {config.device_id})"
        self._sunspec_at: int | None = None

    async def _registers(self, address: int, count: int) -> list[int]:
        if not self.client.connected and not await self.client.connect():
            raise MeterError("no connection")
        try:
            if self.config.meter == "sunspec":
                reply = await self.client.read_holding_registers(
                    address, count=count, device_id=self.config.device_id
                )
            else:
                reply = await self.client.read_input_registers(
                    address, count=count, device_id=self.config.device_id
                )
        except ModbusException as exc:
            raise MeterError(f"{exc}") from exc
        if reply.isError():
            raise MeterError(f"exception reply {reply}")
        if len(reply.registers) != count:
            raise MeterError(f"{len(reply.registers)} of {count} registers")
        return list(reply.registers)

    async def read_w(self) -> float:
        if self.config.meter == "sunspec":
            return await self._read_sunspec()
        register = EASTRON[self.config.meter].power
        return registers_to_float32(await self._registers(register, 2))

    async def _read_sunspec(self) -> float:
        if self._sunspec_at is None:
            self._sunspec_at = await self._find_inverter_model()
        raw = await self._registers(self._sunspec_at + SUNSPEC_W, 2)
        if raw[0] == INT16_NOT_IMPLEMENTED or raw[1] == INT16_NOT_IMPLEMENTED:
            raise MeterError("AC power not available")
        return float(int16(raw[0]) * 10.0 ** int16(raw[1]))

    async def _find_inverter_model(self) -> int:
        base = self.config.sunspec_base
        if tuple(await self._registers(base, 2)) != SUNSPEC_MARKER:
            raise MeterError(f"no SunSpec marker at {base}")
        address = base + 2
        for _ in range(32):  # a real chain has a handful of models
            model, length = await self._registers(address, 2)
            if model == SUNSPEC_END:
                break
            if model in SUNSPEC_INVERTERS:
                return address
            address += 2 + length
        raise MeterError("no SunSpec inverter model (101-103)")

    async def aclose(self) -> None:
        self.client.close()
