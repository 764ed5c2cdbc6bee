"""The ADS1115 at register level (TI datasheet SBAS444): 16-bit, four inputs, PGA, single-shot.

Registers: 0 conversion (signed 16-bit), 1 config (reset 0x8583), 2/3 comparator thresholds.
Config: OS (bit 15: write 1 starts a single conversion, reads 1 when idle), MUX (14-12), PGA
(11-9: ±6.144, ±4.096, ±2.048, ±1.024, ±0.512, ±0.256 V), MODE (8: 1 single-shot), DR (7-5),
comparator (4-0). A conversion here completes at once (the part takes 1/DR: 7.8 ms at 128 SPS);
the result is clipped to full scale, and no input can read beyond VDD + 0.3 V, the most the part's
inputs may see: ``overdriven`` records that an input went there.
"""

from __future__ import annotations

CONVERSION, CONFIG, LO_THRESH, HI_THRESH = 0x00, 0x01, 0x02, 0x03
RESET_CONFIG = 0x8583
OS_BIT, MODE_SINGLE = 0x8000, 0x0100
FULL_SCALE_V = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256)
MUX_PAIRS = (
    (0, 1),
    (0, 3),
    (1, 3),
    (2, 3),
    (0, None),
    (1, None),
    (2, None),
    (3, None),
)


class Ads1115Model:
    part = "ADS1115"

    def __init__(self, vdd_v: float = 3.3) -> None:
        self.vdd_v = vdd_v
        self.inputs_v = [0.0, 0.0, 0.0, 0.0]
        """AIN0-AIN3 against GND, as the circuit drives them."""
        self.overdriven = False
        self.conversions = 0
        self.reset()

    def reset(self) -> None:
        """Power-on reset, as after a brownout: single-shot, AIN0-AIN1, ±2.048 V, result 0, which
        never moves again until the configuration is written."""
        self.regs = {CONVERSION: 0, CONFIG: RESET_CONFIG, LO_THRESH: 0x8000, HI_THRESH: 0x7FFF}

    def _pin_v(self, pin: int | None) -> float:
        if pin is None:
            return 0.0
        volts = self.inputs_v[pin]
        ceiling = self.vdd_v + 0.3
        if volts > ceiling or volts < -0.3:
            self.overdriven = True
        return max(-0.3, min(ceiling, volts))

    def _convert(self) -> None:
        config = self.regs[CONFIG]
        positive, negative = MUX_PAIRS[(config >> 12) & 0x7]
        full_scale = FULL_SCALE_V[(config >> 9) & 0x7]
        volts = self._pin_v(positive) - self._pin_v(negative)
        code = max(-32768, min(32767, round(volts / full_scale * 32768)))
        self.regs[CONVERSION] = code & 0xFFFF
        self.conversions += 1

    def read_register(self, register: int, length: int) -> bytes:
        config = self.regs[CONFIG]
        if register == CONVERSION and not config & MODE_SINGLE:
            self._convert()  # continuous mode: the register follows the input
        value = self.regs.get(register & 0x03, 0)
        if register & 0x03 == CONFIG:
            value |= OS_BIT  # conversions complete at once: always idle when read
        return value.to_bytes(2, "big")[:length].ljust(length, b"\0")

    def write_register(self, register: int, data: bytes) -> None:
        value = int.from_bytes(data[:2].ljust(2, b"\0"), "big")
        register &= 0x03
        if register == CONVERSION:
            return  # read-only
        if register == CONFIG:
            self.regs[CONFIG] = value & ~OS_BIT
            if value & OS_BIT or not value & MODE_SINGLE:
                self._convert()
            return
        self.regs[register] = value
