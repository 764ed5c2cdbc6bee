"""A simulated site meter for the bench: pymodbus's own server holding an Eastron SDM630's
input-register map, fed by a seeded house load profile and a solar curve.

The station reads it as it would read a real SDM630 (Modbus TCP, function code 4, float32 high
word first). The reading is the site's import: house load minus solar plus what the station
itself draws, so the budget the station derives from it moves as a real one would. ``drop()``
stops the server (the meter stops answering), ``restore()`` starts it again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware.budget.meters import SDM630, SDM630_PHASE_POWER, float32_to_registers
from hal.clock import Clock

log = logging.getLogger(__name__)

REGISTERS = 0x60
"""The input registers served: past import/export energy (0x48..0x4B)."""


@dataclass(frozen=True, slots=True)
class SiteProfile:
    """A house and its roof, compressed: one day passes in ``day_s`` seconds of clock time."""

    seed: int = 1
    day_s: float = 1200.0
    base_w: float = 2400.0
    swing_w: float = 500.0
    solar_peak_w: float = 1800.0
    spike_w: float = 1500.0
    spike_every_s: float = 90.0
    spike_s: float = 20.0


class HouseModel:
    """House load and solar production at a moment; the same seed gives the same day."""

    def __init__(self, profile: SiteProfile) -> None:
        self.profile = profile
        rng = random.Random(profile.seed)
        # Appliance spikes (a kettle, an oven): start times and sizes drawn once from the seed.
        self.spikes = [
            (i * profile.spike_every_s + rng.uniform(0, profile.spike_every_s / 2),
             profile.spike_w * rng.uniform(0.4, 1.0))
            for i in range(int(profile.day_s / profile.spike_every_s) + 1)
        ]  # fmt: skip
        self.clouds = [rng.uniform(0.6, 1.0) for _ in range(48)]

    def house_w(self, t: float) -> float:
        p = self.profile
        phase = (t % p.day_s) / p.day_s
        load = p.base_w + p.swing_w * math.sin(2 * math.pi * (phase - 0.3))
        at = t % p.day_s
        for start, watts in self.spikes:
            if start <= at < start + p.spike_s:
                load += watts
        return max(0.0, load)

    def solar_w(self, t: float) -> float:
        p = self.profile
        phase = (t % p.day_s) / p.day_s  # 0.25 sunrise, 0.75 sunset
        sun = math.sin(math.pi * (phase - 0.25) / 0.5) if 0.25 < phase < 0.75 else 0.0
        cloud = self.clouds[int(phase * len(self.clouds)) % len(self.clouds)]
        return max(0.0, p.solar_peak_w * sun * cloud)


class SimulatedMeter:
    """An SDM630 on Modbus TCP at ``host:port``, its power register written as the model moves."""

    def __init__(
        self,
        clock: Clock,
        port: int,
        *,
        host: str = "127.0.0.1",
        profile: SiteProfile | None = None,
        station_w: Callable[[], float] = lambda: 0.0,
        device_id: int = 1,
    ) -> None:
        self.clock = clock
        self.host = host
        self.port = port
        self.device_id = device_id
        self.model = HouseModel(profile or SiteProfile())
        self.station_w = station_w
        self.device = SimDevice(
            device_id,
            simdata=[SimData(0, values=[0] * REGISTERS, datatype=DataType.REGISTERS)],
            action=self._on_request,
        )
        self.registers: dict[int, int] = {}
        self.server: ModbusTcpServer | None = None
        self.power_w = 0.0
        self.house_w: float | None = None
        """Set by tests (or the /sim page): a fixed house load instead of the model's."""
        self.import_kwh = 0.0

    @property
    def answering(self) -> bool:
        return self.server is not None

    def set_power(self, watts: float) -> None:
        """The total system power register (and the phases, a third each) from now on."""
        self.power_w = watts
        floats = {SDM630.power: watts, SDM630.import_kwh: self.import_kwh}
        floats.update(dict.fromkeys(SDM630_PHASE_POWER, watts / 3))
        for register, value in floats.items():
            high, low = float32_to_registers(value)
            self.registers[register] = high
            self.registers[register + 1] = low

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus asks before each answer: the registers get the meter's present values."""
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # a meter's measurements are read-only
        for register, value in self.registers.items():
            index = register - start_address
            if 0 <= index < len(current):
                current[index] = value
        return None

    def update(self) -> float:
        if self.house_w is not None:
            watts = self.house_w + self.station_w()
        else:
            now = self.clock.monotonic()
            watts = self.model.house_w(now) - self.model.solar_w(now) + self.station_w()
        self.set_power(watts)
        return watts

    async def start(self) -> None:
        self.update()
        server = ModbusTcpServer(self.device, address=(self.host, self.port))
        await server.serve_forever(background=True)
        self.server = server
        log.info("simulated SDM630 on %s:%d", self.host, self.port)

    async def drop(self) -> None:
        """The meter stops answering (its server closes, as a meter losing power would)."""
        server, self.server = self.server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
            log.info("simulated meter dropped out")

    async def restore(self) -> None:
        if self.server is None:
            await self.start()

    async def run(self, period_s: float = 1.0) -> None:
        """Move the reading with the model, and count the energy imported, until cancelled."""
        last = self.clock.monotonic()
        try:
            while True:
                watts = self.update()
                now = self.clock.monotonic()
                self.import_kwh += max(0.0, watts) * (now - last) / 3_600_000
                last = now
                await self.clock.sleep(period_s)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.drop())
