"""The Modbus readers against pymodbus's own server holding each device's real register map."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware.budget.meters import SDM120, MeterError, ModbusMeter, float32_to_registers
from firmware.site_config import ModbusMeterConfig
from tests.support import free_port


async def serving(device: SimDevice) -> AsyncIterator[int]:
    port = free_port()
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        yield port
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def sdm120(watts: float) -> SimDevice:
    registers = [0] * 0x50
    registers[SDM120.power : SDM120.power + 2] = float32_to_registers(watts)
    registers[SDM120.import_kwh : SDM120.import_kwh + 2] = float32_to_registers(1234.5)
    return SimDevice(2, simdata=[SimData(0, values=registers, datatype=DataType.REGISTERS)])


def sunspec(common_length: int, watts_raw: int, scale: int) -> SimDevice:
    """ "SunS", a common model of the given length, model 103 (W at +14, W_SF at +15), the end."""
    registers = [0x5375, 0x6E53, 1, common_length] + [0] * common_length
    inverter = [0] * 52
    inverter[0:2] = [103, 50]
    inverter[14] = watts_raw & 0xFFFF
    inverter[15] = scale & 0xFFFF
    registers += [*inverter, 0xFFFF, 0]
    return SimDevice(1, simdata=[SimData(40000, values=registers, datatype=DataType.REGISTERS)])


async def test_sdm120_active_power() -> None:
    async for port in serving(sdm120(-742.25)):
        meter = ModbusMeter(
            ModbusMeterConfig(meter="sdm120", host="127.0.0.1", port=port, device_id=2)
        )
        try:
            assert await meter.read_w() == -742.25  # exporting
        finally:
            await meter.aclose()


@pytest.mark.parametrize("common_length", [65, 66])
async def test_sunspec_inverter_power_found_by_walking_the_models(common_length: int) -> None:
    async for port in serving(sunspec(common_length, 31415, -1)):
        meter = ModbusMeter(ModbusMeterConfig(meter="sunspec", host="127.0.0.1", port=port))
        try:
            assert await meter.read_w() == pytest.approx(3141.5)
        finally:
            await meter.aclose()


async def test_a_meter_that_is_not_there_is_an_error_not_zero() -> None:
    meter = ModbusMeter(
        ModbusMeterConfig(meter="sdm630", host="127.0.0.1", port=free_port(), timeout_s=0.2)
    )
    with pytest.raises(MeterError, match="no connection"):
        await meter.read_w()
    await meter.aclose()
