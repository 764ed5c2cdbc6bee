"""A port for packs above the INA228's 85 V: voltage through a divider into an ADS1115, current from
an INA228 on the low side (its inputs then sit near 0 V whatever the pack's voltage).

The divider (1 MΩ over 22 kΩ on the reference board, hardware/README.md) brings 126 V to 2.71 V,
inside the ±4.096 V range (gain 1) and under the 3.3 V-supplied ADC's input ceiling. A reading at
the ADC's full scale, or a divided voltage above what the port is rated for, cannot be trusted and
is an error, as an overflow is on the other ports. The adafruit ADS1x15 driver does the register
work, on a Pi and against the register-level model alike.

The ADC converts continuously (:data:`DATA_RATE_SPS`): a read is one register transfer of a result
at most 7.8 ms old, where a single-shot read would write the configuration and poll the part for a
conversion inside every pass of the safety loop. The driver's first read waits for two conversions
(16 ms of real time); the monitor takes it when it is built, not in a pass.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from hal.clock import Clock
from hal.errors import BackendUnavailable, ImplausibleReading, SensorError
from hal.interfaces import PowerMonitor, PowerReading

ADC_FULL_SCALE_V = {1: 4.096, 2: 2.048, 4: 1.024, 8: 0.512, 16: 0.256}
"""The PGA's full scale at each gain the configuration allows (hal/hv_config.py)."""
_ADC_CLIP_CODE = 32767
DATA_RATE_SPS = 128


class HighVoltageMonitor(PowerMonitor):
    part = "ADS1115 divider + INA228 (low side)"

    def __init__(
        self,
        i2c: Any,
        clock: Clock,
        current: PowerMonitor,
        *,
        adc_address: int = 0x48,
        channel: int = 0,
        gain: int = 1,
        r_top_ohms: float = 1_000_000.0,
        r_bottom_ohms: float = 22_000.0,
        max_bus_voltage_v: float = 140.0,
        inline: bool = False,
    ) -> None:
        self._clock = clock
        self.current = current
        self.adc_address = adc_address
        self.channel = channel
        self.gain = gain
        self.ratio = (r_top_ohms + r_bottom_ohms) / r_bottom_ohms
        self.r_top_ohms, self.r_bottom_ohms = r_top_ohms, r_bottom_ohms
        self.max_bus_voltage_v = max_bus_voltage_v
        self._inline = inline
        try:
            import adafruit_ads1x15.ads1115 as ads1115
            from adafruit_ads1x15.ads1x15 import Mode
            from adafruit_ads1x15.analog_in import AnalogIn
        except ImportError as exc:
            raise BackendUnavailable(
                "adafruit-circuitpython-ads1x15 is not installed: pip install 'pev-charger[pi]'"
            ) from exc
        try:
            adc = ads1115.ADS1115(
                i2c,
                gain=gain,
                data_rate=DATA_RATE_SPS,
                mode=Mode.CONTINUOUS,
                address=adc_address,
            )
            self._input = AnalogIn(adc, channel)
            self._read_adc()  # starts the conversions (and the driver's one wait)
        except (OSError, ValueError) as exc:
            raise SensorError(f"ADS1115 at 0x{adc_address:02X} does not answer: {exc}") from exc

    def _read_adc(self) -> tuple[int, float]:
        code = int(self._input.value)  # one transfer: the voltage follows from the code
        return code, code / 32768 * ADC_FULL_SCALE_V[self.gain]

    async def read(self) -> PowerReading:
        where = f"ADS1115 at 0x{self.adc_address:02X} AIN{self.channel}"
        try:
            if self._inline:
                code, adc_v = self._read_adc()
            else:
                code, adc_v = await asyncio.to_thread(self._read_adc)
        except OSError as exc:
            raise SensorError(f"{where}: I2C read failed: {exc}") from exc
        if not math.isfinite(adc_v):
            raise ImplausibleReading(f"{where}: voltage is {adc_v}")
        if code >= _ADC_CLIP_CODE:
            raise ImplausibleReading(f"{where}: at full scale; the divided voltage is out of range")
        volts = adc_v * self.ratio
        if volts > self.max_bus_voltage_v:
            raise ImplausibleReading(
                f"{where}: {volts:.1f} V is above the port's {self.max_bus_voltage_v:g} V rating"
            )
        low_side = await self.current.read()
        amps = low_side.current_a
        return PowerReading(volts, amps, volts * amps, False, self._clock.monotonic())

    def describe(self) -> dict[str, object]:
        return {
            "part": self.part,
            "adc": (
                f"ADS1115 0x{self.adc_address:02X} AIN{self.channel}, "
                f"±{ADC_FULL_SCALE_V[self.gain]:g} V"
            ),
            "divider": f"{self.r_top_ohms:g} Ω / {self.r_bottom_ohms:g} Ω (x{self.ratio:.3f})",
            "input_limit_v": self.max_bus_voltage_v,
            "current": self.current.describe(),
        }
