"""The real adafruit PN532 driver against the frame-level PN532 model on a simulated I2C bus."""

from __future__ import annotations

import pytest
from adafruit_pn532.i2c import PN532_I2C

from hal.rfid import PN532Reader, pn532_on
from hal.sim.i2c import SimI2C
from hal.sim.pn532 import ACK, ADDRESS, SimPN532, _unframe, frame

UID = bytes.fromhex("04A1B2C3D4E5F6")


def chip_on_bus() -> tuple[SimI2C, SimPN532]:
    bus, chip = SimI2C(), SimPN532()
    bus.add_stream_device(ADDRESS, chip)
    return bus, chip


def test_frames_are_checked_as_the_chip_checks_them() -> None:
    good = frame(b"\xd4\x02")
    assert good == bytes([0, 0, 0xFF, 2, 0xFE, 0xD4, 0x02, 0x2A, 0])
    assert _unframe(good) == b"\xd4\x02"
    assert _unframe(good[:5] + b"\xd4\x03" + good[7:]) is None  # data checksum
    assert _unframe(good[:4] + b"\xfd" + good[5:]) is None  # length checksum
    chip = SimPN532()
    chip.i2c_write(good[:5] + b"\xd4\x03" + good[7:])
    assert chip.bad_frames == 1 and chip.i2c_read(1) == b"\x00"  # ignored: no ACK
    chip.i2c_write(good)
    assert chip.i2c_read(1) == b"\x01"
    assert chip.i2c_read(7) == b"\x01" + ACK


def test_the_driver_identifies_the_chip_and_reads_a_tag_once() -> None:
    bus, chip = chip_on_bus()
    driver = PN532_I2C(bus, address=ADDRESS)  # reset, SAMConfiguration, GetFirmwareVersion
    assert tuple(driver.firmware_version) == (0x32, 1, 6, 7)
    assert driver.read_passive_target(timeout=0.05) is None  # no tag: the driver times out
    chip.present(UID)
    assert bytes(driver.read_passive_target(timeout=0.5)) == UID
    assert driver.read_passive_target(timeout=0.05) is None  # still held: reported once
    chip.remove()
    chip.present(bytes.fromhex("DEADBEEF"))
    assert bytes(driver.read_passive_target(timeout=0.5)) == bytes.fromhex("DEADBEEF")
    assert chip.commands.count(0x4A) >= 4 and chip.bad_frames == 0


async def test_the_reader_listens_once_and_polls() -> None:
    bus, chip = chip_on_bus()
    reader = pn532_on(bus, ADDRESS, "sim i2c")
    assert isinstance(reader, PN532Reader) and reader.firmware[0] == 0x32
    assert await reader.read_uid() is None
    assert await reader.read_uid() is None
    assert chip.commands.count(0x4A) == 1  # listening stays on between polls
    chip.present(UID)
    assert await reader.read_uid() == UID
    assert await reader.read_uid() is None
    await reader.close()


async def test_a_reader_that_does_not_answer_is_an_error() -> None:
    with pytest.raises(OSError, match="no PN532 answers"):
        pn532_on(SimI2C(), ADDRESS, "an empty bus")
    bus, _ = chip_on_bus()
    reader = pn532_on(bus, ADDRESS, "sim i2c")
    bus.fail_next[ADDRESS] = 1000
    with pytest.raises(OSError):
        await reader.read_uid()
