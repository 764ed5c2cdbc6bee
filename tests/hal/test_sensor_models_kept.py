"""The INA models keep each register's answer until what flows or their settings change: after
any sequence of changes, writes and reads, every register answers as a fresh part set the same
way would."""

from __future__ import annotations

import random

import pytest

from hal.sim.ina219 import Ina219Model
from hal.sim.ina228 import Ina228Model

Model = Ina219Model | Ina228Model

INA219_REGISTERS = [0, 1, 2, 3, 4, 5]
INA228_REGISTERS = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0B, 0x3E, 0x3F]
INA219_WRITABLE = [0, 5]
INA228_WRITABLE = [0x00, 0x01, 0x02, 0x03, 0x0B]


def fresh_like(model: Model) -> Model:
    """A new part with the same settings and the same inputs (nothing read from it yet)."""
    if isinstance(model, Ina219Model):
        twin: Model = Ina219Model(model.shunt_ohms)
        twin.write_register(0, model.config.to_bytes(2, "big"))
        twin.write_register(5, model.calibration.to_bytes(2, "big"))
    else:
        twin = Ina228Model(model.shunt_ohms)
        for register, value in model.regs.items():
            twin.write_register(register, value.to_bytes(2, "big"))
        twin.die_temperature_c = model.die_temperature_c
    twin.bus_voltage_v, twin.current_a = model.bus_voltage_v, model.current_a
    return twin


@pytest.mark.parametrize("make", [Ina219Model, Ina228Model])
@pytest.mark.parametrize("seed", range(5))
def test_every_answer_is_a_fresh_parts_after_any_changes(make: type[Model], seed: int) -> None:
    rng = random.Random(seed)
    model = make(rng.choice([0.002, 0.015, 0.05, 0.1]))
    is_219 = isinstance(model, Ina219Model)
    registers = INA219_REGISTERS if is_219 else INA228_REGISTERS
    writable = INA219_WRITABLE if is_219 else INA228_WRITABLE
    for _ in range(400):
        roll = rng.random()
        if roll < 0.25:
            model.bus_voltage_v = rng.choice([0.0, 12.0, rng.uniform(0.0, 90.0)])
        elif roll < 0.5:
            model.current_a = rng.choice([0.0, 2.0, rng.uniform(-5.0, 5.0), rng.uniform(0, 300)])
        elif roll < 0.6:
            value = rng.getrandbits(15)  # no reset bit: a reset is tested apart
            model.write_register(rng.choice(writable), value.to_bytes(2, "big"))
        elif roll < 0.65 and isinstance(model, Ina228Model):
            model.die_temperature_c = rng.uniform(-40.0, 120.0)
        else:
            register = rng.choice(registers)
            if is_219 and register == 2:
                continue  # its conversion-ready bit follows the reads themselves
            twin = fresh_like(model)
            assert model.read_register(register, 2) == twin.read_register(register, 2)
            if not is_219:
                assert model.read_register(register, 3) == twin.read_register(register, 3)


def test_a_reset_forgets_the_answers() -> None:
    model = Ina228Model(0.015)
    model.write_register(0x02, (0x1000).to_bytes(2, "big"))
    model.current_a = 3.0
    before = model.read_register(0x07, 3)
    model.write_register(0x00, (0x8000).to_bytes(2, "big"))  # reset: SHUNT_CAL back to 0x1000
    model.write_register(0x02, (0x2000).to_bytes(2, "big"))
    assert model.read_register(0x07, 3) != before
    assert model.read_register(0x07, 3) == fresh_like(model).read_register(0x07, 3)
