"""The header UART table: the overlays, the udev names and the configuration check agree."""

from __future__ import annotations

import pytest

from hal.pi.uarts import (
    BOARDS,
    OVERLAYS,
    STATION_PINS,
    UARTS,
    config_txt_lines,
    stable_name,
    uart_pins,
    udev_rules,
)


@pytest.mark.parametrize("board", BOARDS)
def test_every_station_uart_has_an_overlay_a_kernel_name_and_a_stable_name(board: str) -> None:
    lines = config_txt_lines(board)
    rules = udev_rules(board)
    for pins in STATION_PINS:
        assert OVERLAYS[board][pins] in lines
        kernel = next(name for name, p in UARTS[board].items() if p == pins)
        assert f'KERNEL=="{kernel}", SYMLINK+="{stable_name(pins)[5:]}"' in rules
        assert uart_pins(f"/dev/{kernel}", board) == pins
        assert uart_pins(stable_name(pins), None) == pins


def test_the_same_pins_have_other_kernel_names_on_a_pi_5() -> None:
    assert uart_pins("/dev/ttyAMA3", "pi4") == (4, 5)
    assert uart_pins("/dev/ttyAMA2", "pi5") == (4, 5)
    assert "dtoverlay=uart3" in config_txt_lines("pi4", ((4, 5),))
    assert "dtoverlay=uart2-pi5" in config_txt_lines("pi5", ((4, 5),))


def test_i2c_runs_at_400_khz_and_a_pi_4_moves_bluetooth_off_the_pl011() -> None:
    assert "dtparam=i2c_arm_baudrate=400000" in config_txt_lines("pi5")
    pi4 = config_txt_lines("pi4")
    assert "enable_uart=1" in pi4 and "dtoverlay=disable-bt" in pi4
    assert "dtoverlay=disable-bt" not in config_txt_lines("pi5")


def test_off_header_uarts_take_no_pins() -> None:
    assert uart_pins("/dev/ttyUSB0", None) is None
    assert uart_pins("/dev/serial/by-id/usb-FTDI_A10K1ABC-if00-port0", None) is None
