"""The Riden RD60xx family (RD6006, RD6006P, RD6012, RD6018, RD6024) as a port's power stage.

The modules are 0-60 V programmable CC/CV supplies with Modbus RTU on their USB-serial port
(115200 8N1 by default, slave id 1). Register map and scale factors as the community documents
them, none of it from the maker:

- registers 0 model id, 1-2 serial number, 3 firmware, 8 V set, 9 I set, 10 V out, 11 I out,
  12-13 power, 14 V in, 15 keypad lock, 16 protection (1 OVP, 2 OCP), 17 mode (0 CV, 1 CC),
  18 output enable, 82/83 OVP/OCP of the active preset: Baldanos/rd6006 ``registers.md`` and
  ``rd6006.py``; ShayBox/Riden ``riden/register.py``;
- the model id names the scale: RD6006 (60060-60064) V/100 I/1000; RD6006P (60065) V/1000
  I/10000; RD6012 (60120-60124), RD6018 (60180-60189), RD6024 (60240-60249) V/100 I/100:
  ShayBox/Riden ``riden/riden.py`` and sigrok's ``src/hardware/rdtech-dps/api.c``. The RD6012P
  (60125) switches its current scale with a range register and is refused rather than guessed.

Modbus goes through pymodbus's asyncio client (imported only when a stage is opened). Every
request has the station's deadline on the injected clock; pymodbus's own timeout is set to the same
figure with no retries, so a silent stage is reported once, on time, on either clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hal.clock import Clock, wait_for
from hal.errors import BackendUnavailable, StageError, StageTimeout
from hal.interfaces import (
    PowerStage,
    StageLimits,
    StageMode,
    StageProtection,
    StageStatus,
)
from hal.stages import check_range

REG_MODEL, REG_SERIAL_HIGH, REG_SERIAL_LOW, REG_FIRMWARE = 0, 1, 2, 3
REG_V_SET, REG_I_SET, REG_V_OUT, REG_I_OUT = 8, 9, 10, 11
REG_POWER_HIGH, REG_POWER_LOW, REG_V_IN, REG_KEYPAD_LOCK = 12, 13, 14, 15
REG_PROTECTION, REG_MODE, REG_OUTPUT = 16, 17, 18
REG_OVP, REG_OCP = 82, 83
PROTECTION_OVP, PROTECTION_OCP = 1, 2

DEFAULT_BAUD = 115200
DEFAULT_DEVICE_ID = 1
DEFAULT_TIMEOUT_S = 0.5
"""A request and its answer take a few milliseconds at 115200 baud; half a second is generous."""


@dataclass(frozen=True, slots=True)
class RidenModel:
    name: str
    max_voltage_v: float
    max_current_a: float
    voltage_scale: int
    """Raw counts per volt."""
    current_scale: int
    """Raw counts per ampere."""

    @property
    def limits(self) -> StageLimits:
        return StageLimits(
            self.max_voltage_v,
            self.max_current_a,
            1.0 / self.voltage_scale,
            1.0 / self.current_scale,
        )


RD6006 = RidenModel("RD6006", 60.0, 6.0, 100, 1000)
RD6006P = RidenModel("RD6006P", 60.0, 6.0, 1000, 10000)
RD6012 = RidenModel("RD6012", 60.0, 12.0, 100, 100)
RD6018 = RidenModel("RD6018", 60.0, 18.0, 100, 100)
RD6024 = RidenModel("RD6024", 60.0, 24.0, 100, 100)
MODEL_IDS: dict[str, int] = {"RD6006": 60062, "RD6006P": 60065, "RD6012": 60121, "RD6018": 60181}
MODEL_IDS["RD6024"] = 60241


def model_for(model_id: int) -> RidenModel:
    """The model (and so the scale factors) a model id register names."""
    if 60060 <= model_id <= 60064:
        return RD6006
    if model_id == 60065:
        return RD6006P
    if 60120 <= model_id <= 60124:
        return RD6012
    if model_id == 60125:
        raise StageError(
            "RD6012P (model id 60125) switches its current scale with a range register; "
            "it is not supported yet"
        )
    if 60180 <= model_id <= 60189:
        return RD6018
    if 60240 <= model_id <= 60249:
        return RD6024
    raise StageError(f"model id {model_id} is not an RD60xx this driver knows")


def _import_pymodbus() -> Any:
    try:
        import pymodbus.client
        import pymodbus.exceptions
    except ImportError as exc:
        raise BackendUnavailable(
            "pymodbus is not installed: pip install 'pev-charger[pi]'"
        ) from exc
    return pymodbus


class RidenStage(PowerStage):
    """An RD60xx on a serial port (a USB-serial device, or the bench's pty)."""

    part = "RD60xx"

    def __init__(
        self,
        path: str,
        clock: Clock,
        *,
        baud: int = DEFAULT_BAUD,
        device_id: int = DEFAULT_DEVICE_ID,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        voltage_cap_v: float | None = None,
    ) -> None:
        self.path = path
        self._clock = clock
        self.baud = baud
        self.device_id = device_id
        self.timeout_s = timeout_s
        self.voltage_cap_v = voltage_cap_v
        """The port's own limit: the stage is never set above it, whatever the part allows."""
        self.model: RidenModel | None = None
        self.firmware: float | None = None
        self._client: Any = None
        self._modbus: Any = None

    # --- identity ---------------------------------------------------------------------------------

    @property
    def limits(self) -> StageLimits:
        if self.model is None:
            raise StageError(f"{self.path}: the stage has not been opened")
        limits = self.model.limits
        if self.voltage_cap_v is not None and self.voltage_cap_v < limits.max_voltage_v:
            return StageLimits(
                self.voltage_cap_v,
                limits.max_current_a,
                limits.voltage_step_v,
                limits.current_step_a,
            )
        return limits

    def describe(self) -> dict[str, object]:
        model = self.model
        return {
            "part": model.name if model else self.part,
            "link": f"Modbus RTU {self.path} {self.baud} 8N1, device {self.device_id}",
            "firmware": self.firmware,
            "max_voltage_v": self.limits.max_voltage_v if model else None,
            "max_current_a": model.max_current_a if model else None,
            "timeout_s": self.timeout_s,
        }

    async def open(self) -> None:
        self._modbus = _import_pymodbus()
        client = self._modbus.client.AsyncModbusSerialClient(
            self.path,
            baudrate=self.baud,
            bytesize=8,
            parity="N",
            stopbits=1,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,
            name=f"stage {self.path}",
        )
        try:
            connected = await wait_for(self._clock, client.connect(), self.timeout_s)
        except TimeoutError:
            connected = False
        if not connected:
            client.close()
            raise StageError(f"{self.path}: cannot open the stage's serial port")
        self._client = client
        try:
            regs = await self._read(REG_MODEL, 4)
        except StageError:
            await self.close()
            raise
        self.model = model_for(regs[REG_MODEL])
        self.firmware = regs[REG_FIRMWARE] / 100

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- Modbus, each request under the deadline ------------------------------------------------

    async def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            raise StageError(f"{self.path}: the stage is not open")
        errors = self._modbus.exceptions
        request = getattr(self._client, method)(*args, device_id=self.device_id, **kwargs)
        try:
            response = await wait_for(self._clock, request, self.timeout_s)
        except TimeoutError as exc:
            raise StageTimeout(
                f"{self.path}: no answer to {what} within {self.timeout_s:g} s"
            ) from exc
        except errors.ModbusIOException as exc:
            raise StageTimeout(f"{self.path}: no answer to {what}: {exc}") from exc
        except errors.ModbusException as exc:
            raise StageError(f"{self.path}: {what} failed: {exc}") from exc
        if response.isError():
            raise StageError(f"{self.path}: the stage refused {what}: {response}")
        return response

    async def _read(self, address: int, count: int) -> dict[int, int]:
        response = await self._call(
            f"reading registers {address}-{address + count - 1}",
            "read_holding_registers",
            address,
            count=count,
        )
        registers: list[int] = list(response.registers)
        if len(registers) != count:
            raise StageError(f"{self.path}: asked for {count} registers, got {len(registers)}")
        return {address + i: value for i, value in enumerate(registers)}

    async def _write(self, address: int, value: int) -> None:
        await self._call(f"writing {value} to register {address}", "write_register", address, value)

    def _model(self) -> RidenModel:
        if self.model is None:
            raise StageError(f"{self.path}: the stage has not been opened")
        return self.model

    # --- the interface ----------------------------------------------------------------------------

    async def set_voltage(self, voltage_v: float) -> None:
        check_range(self.limits, voltage_v, None)
        await self._write(REG_V_SET, round(voltage_v * self._model().voltage_scale))

    async def set_current(self, current_a: float) -> None:
        check_range(self.limits, None, current_a)
        await self._write(REG_I_SET, round(current_a * self._model().current_scale))

    async def set_output(self, on: bool) -> None:
        await self._write(REG_OUTPUT, 1 if on else 0)

    async def set_protection(self, over_voltage_v: float, over_current_a: float) -> None:
        """The part's own OVP and OCP trip points: a second line of defence behind the station."""
        model = self._model()
        await self._write(REG_OVP, round(over_voltage_v * model.voltage_scale))
        await self._write(REG_OCP, round(over_current_a * model.current_scale))

    async def read_protection(self) -> tuple[float, float]:
        model = self._model()
        regs = await self._read(REG_OVP, 2)
        return regs[REG_OVP] / model.voltage_scale, regs[REG_OCP] / model.current_scale

    async def read(self) -> StageStatus:
        model = self._model()
        regs = await self._read(REG_V_SET, REG_OUTPUT - REG_V_SET + 1)
        flags = StageProtection.NONE
        raw = regs[REG_PROTECTION]
        if raw == PROTECTION_OVP:
            flags = StageProtection.OVER_VOLTAGE
        elif raw == PROTECTION_OCP:
            flags = StageProtection.OVER_CURRENT
        elif raw:
            flags = StageProtection.OTHER
        return StageStatus(
            voltage_set_v=regs[REG_V_SET] / model.voltage_scale,
            current_set_a=regs[REG_I_SET] / model.current_scale,
            output_on=bool(regs[REG_OUTPUT]),
            output_voltage_v=regs[REG_V_OUT] / model.voltage_scale,
            output_current_a=regs[REG_I_OUT] / model.current_scale,
            mode=StageMode.CONSTANT_CURRENT if regs[REG_MODE] else StageMode.CONSTANT_VOLTAGE,
            protection=flags,
            timestamp=self._clock.monotonic(),
        )
