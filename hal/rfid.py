"""RFID/NFC readers: a PN532 through its adafruit driver, on the Pi's I2C or on the bench's.

The driver blocks (I2C with clock stretching, and real-time waits of its own), so every call runs
in a worker thread. The reader is put in listening mode once (InListPassiveTarget) and then
asked, poll after poll, whether its answer is there, waiting at most ``POLL_WAIT_S`` each time:
the IRQ-less way the driver's ``listen_for_passive_target`` / ``get_passive_target`` allow.

On a Raspberry Pi, give the PN532 an I2C bus of its own (for example ``dtoverlay=i2c-gpio``):
it stretches the clock, which the Pi's I2C controller handles badly, and the power sensors'
bus must not be held up by it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hal.errors import BackendUnavailable, ConfigError
from hal.interfaces import TagReader

POLL_WAIT_S = 0.02
"""Real seconds one poll waits for the reader's answer."""
COMMAND_WAIT_S = 0.5


class PN532Reader(TagReader):
    """Any ``adafruit_pn532`` driver object (I2C, or UART on a Pi), behind :class:`TagReader`."""

    def __init__(self, driver: Any, where: str) -> None:
        self.driver = driver
        self.where = where
        self._listening = False

    @property
    def firmware(self) -> tuple[int, ...]:
        return tuple(self.driver.firmware_version)

    def _poll(self) -> bytes | None:
        try:
            return self._listen_and_get()
        except OSError:
            self._listening = False
            raise
        except Exception as exc:  # the driver's RuntimeError and BusyError: a garbled answer
            self._listening = False
            raise OSError(f"the PN532 on {self.where}: {exc!r}") from exc

    def _listen_and_get(self) -> bytes | None:
        if not self._listening:
            if not self.driver.listen_for_passive_target(timeout=COMMAND_WAIT_S):
                raise OSError(f"the PN532 on {self.where} did not acknowledge")
            self._listening = True
        uid = self.driver.get_passive_target(timeout=POLL_WAIT_S)
        if uid is None:
            return None
        self._listening = False
        return bytes(uid)

    async def read_uid(self) -> bytes | None:
        return await asyncio.to_thread(self._poll)

    async def close(self) -> None:
        self._listening = False

    def describe(self) -> dict[str, object]:
        return {"kind": "pn532", "where": self.where}


def pn532_on(i2c: Any, address: int, where: str) -> PN532Reader:
    """The adafruit driver on a busio-like bus (the Pi's, or :class:`hal.sim.i2c.SimI2C`)."""
    try:
        from adafruit_pn532.i2c import PN532_I2C
    except ImportError as exc:
        raise BackendUnavailable(
            f"the PN532 driver is not installed ({exc}): pip install 'pev-charger[pi]'"
        ) from exc
    try:
        driver = PN532_I2C(i2c, address=address)
    except (RuntimeError, ValueError) as exc:  # no ACK, no firmware version: no reader there
        raise OSError(f"no PN532 answers on {where}: {exc}") from exc
    return PN532Reader(driver, where)


def open_pi_reader(bus_number: int, address: int) -> PN532Reader:
    from hal.pi.backend import open_i2c

    return pn532_on(open_i2c(bus_number), address, f"i2c-{bus_number} 0x{address:02X}")


# --- configuration ([rfid]) ---------------------------------------------------------------------

RFID_BACKENDS = ("pn532", "sim")


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    port: int
    """The port a tag held to this reader starts (or stops)."""
    i2c_bus: int = 1
    address: int = 0x24


@dataclass(frozen=True, slots=True)
class RfidConfig:
    backend: str = "pn532"
    """``pn532``: the adafruit driver on the Pi's I2C; ``sim``: the bench's PN532 model."""
    readers: tuple[ReaderConfig, ...] = ()
    poll_s: float = 0.25


def parse_rfid(source: str, section: dict[str, Any], ports: Iterable[int]) -> RfidConfig:
    """``[rfid]`` with ``[[rfid.readers]]`` (one per port that has one); errors name the key."""
    where = f"{source}: [rfid]"
    known = {"backend", "readers", "poll_s"}
    for key in section:
        if key not in known:
            raise ConfigError(f"{where} unknown key '{key}' (known: {', '.join(sorted(known))})")
    backend = section.get("backend", "pn532")
    if backend not in RFID_BACKENDS:
        raise ConfigError(f"{where} backend must be one of {', '.join(RFID_BACKENDS)}")
    poll = section.get("poll_s", 0.25)
    if isinstance(poll, bool) or not isinstance(poll, int | float) or not 0.05 <= poll <= 5:
        raise ConfigError(f"{where} poll_s must be 0.05..5 s")
    raw = section.get("readers", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{where} readers must be an array of tables ([[rfid.readers]])")
    valid_ports = set(ports)
    readers: list[ReaderConfig] = []
    for n, item in enumerate(raw, 1):
        at = f"{source}: [[rfid.readers]] #{n}"
        if not isinstance(item, dict) or set(item) - {"port", "i2c_bus", "address"}:
            raise ConfigError(f"{at} takes port, i2c_bus and address only")
        values = {k: item[k] for k in ("port", "i2c_bus", "address") if k in item}
        if any(isinstance(v, bool) or not isinstance(v, int) for v in values.values()):
            raise ConfigError(f"{at} port, i2c_bus and address are whole numbers")
        if "port" not in values or values["port"] not in valid_ports:
            raise ConfigError(f"{at} port must name one of the ports {sorted(valid_ports)}")
        reader = ReaderConfig(**values)
        if not 0x03 <= reader.address <= 0x77 or not 0 <= reader.i2c_bus <= 255:
            raise ConfigError(f"{at} address 0x03..0x77, i2c_bus 0..255")
        readers.append(reader)
    if len({r.port for r in readers}) != len(readers):
        raise ConfigError(f"{where} one reader per port")
    if len({(r.i2c_bus, r.address) for r in readers}) != len(readers):
        raise ConfigError(f"{where} two readers on the same bus and address")
    return RfidConfig(backend, tuple(readers), float(poll))


@dataclass
class Readers:
    """The readers by port; on the bench also the simulated chips, for presenting tags."""

    by_port: dict[int, TagReader] = field(default_factory=dict)
    chips: dict[int, Any] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    """Readers that did not answer at start, by port: the station charges on without them."""

    async def aclose(self) -> None:
        for reader in self.by_port.values():
            await reader.close()


def build_readers(config: RfidConfig) -> Readers:
    """Every configured reader, opened. A missing driver is an error; a reader that does not
    answer is left out and named in ``errors`` (its port still charges from the pages)."""
    readers = Readers()
    for item in config.readers:
        try:
            _open_one(config, item, readers)
        except OSError as exc:
            readers.errors[item.port] = str(exc)
    return readers


def _open_one(config: RfidConfig, item: ReaderConfig, readers: Readers) -> None:
    if config.backend != "sim":
        readers.by_port[item.port] = open_pi_reader(item.i2c_bus, item.address)
        return
    from hal.sim.i2c import SimI2C
    from hal.sim.pn532 import SimPN532

    bus, chip = SimI2C(), SimPN532()
    bus.add_stream_device(item.address, chip)
    where = f"simulated i2c 0x{item.address:02X} (port {item.port})"
    readers.by_port[item.port] = pn532_on(bus, item.address, where)
    readers.chips[item.port] = chip
