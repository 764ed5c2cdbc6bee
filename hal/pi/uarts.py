"""Which header pins each Raspberry Pi UART uses, and the stable names the station gives them.

One table serves the configuration check (a UART's pins may not be a relay's or the watchdog's),
the install script (the ``config.txt`` overlays and the udev rules it writes) and the docs. It uses
the standard library only, so ``hardware/install.sh`` runs it before the station is installed:
``python3 hal/pi/uarts.py config-txt pi5`` or ``python3 hal/pi/uarts.py udev pi4``.

On 6.x kernels UART n is ``/dev/ttyAMAn``. A Pi 4 reaches GPIO 0/1, 4/5, 8/9, 12/13 through uart2-5;
a Pi 5 reaches the same pins through uart1-4 (``uartN-pi5`` overlays), so the kernel's names differ
between the two for the same board. The udev rules name each by its pins instead
(``/dev/pev-uart-4-5``), and one ``station.toml`` serves both.
"""

from __future__ import annotations

import re
import sys

BOARDS = ("pi4", "pi5")


UARTS: dict[str, dict[str, tuple[int, int]]] = {
    # kernel name -> (TX, RX) BCM pins. Pi 4: PL011 uart0 is on GPIO 14/15 only with disable-bt.
    "pi4": {
        "ttyAMA0": (14, 15),
        "ttyAMA2": (0, 1),
        "ttyAMA3": (4, 5),
        "ttyAMA4": (8, 9),
        "ttyAMA5": (12, 13),
    },
    "pi5": {
        "ttyAMA0": (14, 15),
        "ttyAMA1": (0, 1),
        "ttyAMA2": (4, 5),
        "ttyAMA3": (8, 9),
        "ttyAMA4": (12, 13),
    },
}

OVERLAYS: dict[str, dict[tuple[int, int], str]] = {
    # (TX, RX) -> the config.txt line that puts a UART on those pins
    "pi4": {
        (14, 15): "dtoverlay=disable-bt",
        (0, 1): "dtoverlay=uart2",
        (4, 5): "dtoverlay=uart3",
        (8, 9): "dtoverlay=uart4",
        (12, 13): "dtoverlay=uart5",
    },
    "pi5": {
        (14, 15): "dtoverlay=uart0-pi5",
        (0, 1): "dtoverlay=uart1-pi5",
        (4, 5): "dtoverlay=uart2-pi5",
        (8, 9): "dtoverlay=uart3-pi5",
        (12, 13): "dtoverlay=uart4-pi5",
    },
}

STATION_PINS = ((14, 15), (0, 1), (4, 5), (8, 9))
"""The reference board's four port UARTs (hardware/README.md), in port order."""

_STABLE = re.compile(r"^/dev/pev-uart-(\d{1,2})-(\d{1,2})$")
_SHARED = {"/dev/serial0": (14, 15), "/dev/ttyS0": (14, 15)}


def stable_name(pins: tuple[int, int]) -> str:
    return f"/dev/pev-uart-{pins[0]}-{pins[1]}"


def uart_pins(device: str, board: str | None) -> tuple[int, int] | None:
    """The (TX, RX) header pins behind ``device``; None for a UART off the header (USB, I2C).

    Raises ValueError when the pins depend on the board and ``board`` is not given.
    """
    match = _STABLE.match(device)
    if match:
        pins = (int(match[1]), int(match[2]))
        if pins not in OVERLAYS["pi4"]:
            raise ValueError(
                f"{device} names no UART of the header (GPIO TX/RX pairs 14-15, 0-1, "
                "4-5, 8-9, 12-13)"
            )
        return pins
    if device in _SHARED or device == "/dev/ttyAMA0":
        return (14, 15)
    name = device.removeprefix("/dev/")
    if re.fullmatch(r"ttyAMA\d+", name):
        if board is None:
            raise ValueError(
                f'{device} is on different pins on a Pi 4 and a Pi 5: set [hal] board = "pi4" '
                f'or "pi5", or use the install\'s stable names ({stable_name((4, 5))} etc.)'
            )
        found = UARTS[board].get(name)
        if found is None:
            raise ValueError(f"{device} is not a header UART on a {board}")
        return found
    return None


def config_txt_lines(board: str, pins: tuple[tuple[int, int], ...] = STATION_PINS) -> list[str]:
    """The ``config.txt`` lines for I2C at 400 kHz and the UARTs on ``pins``."""
    lines = ["dtparam=i2c_arm=on", "dtparam=i2c_arm_baudrate=400000"]
    if board == "pi4" and (14, 15) in pins:
        lines.append("enable_uart=1")  # the PL011 on GPIO 14/15 needs Bluetooth moved off it
    lines += [OVERLAYS[board][p] for p in pins]
    return lines


def udev_rules(board: str) -> str:
    out = [
        "# Stable names for the header UARTs, by pins: /dev/pev-uart-TX-RX (BCM numbers).",
        f"# Written by hardware/install.sh for a Raspberry Pi {board[-1]}.",
    ]
    for kernel, pins in UARTS[board].items():
        out.append(
            f'SUBSYSTEM=="tty", KERNEL=="{kernel}", SYMLINK+="{stable_name(pins)[5:]}", '
            'GROUP="dialout", MODE="0660"'
        )
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("config-txt", "udev") or argv[1] not in BOARDS:
        print("usage: uarts.py config-txt|udev pi4|pi5", file=sys.stderr)
        return 2
    if argv[0] == "udev":
        sys.stdout.write(udev_rules(argv[1]))
    else:
        print("\n".join(config_txt_lines(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
