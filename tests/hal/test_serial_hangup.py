"""A serial device that goes away is an error, not endless silence, and can be opened again."""

from __future__ import annotations

import os
import tty

import pytest

from hal.errors import SerialLinkError
from hal.sim.serial_pty import open_peer


async def test_a_hung_up_pty_raises_instead_of_reading_silence_for_ever() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    link = open_peer(path)
    os.write(master, b"hello\n")
    assert await link.read(0.5) == b"hello\n"
    os.close(master)  # the far end is gone: the kernel answers EIO or end of file
    with pytest.raises(SerialLinkError, match=r"gone|hung up"):
        for _ in range(50):  # used to return b"" immediately, for ever
            await link.read(0.01)
    os.close(slave)
    await link.close()


async def test_a_device_that_comes_back_is_reopened_on_the_same_path() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    link = open_peer(os.ttyname(slave))
    link.port.close()  # the adapter vanished under the open port
    with pytest.raises(SerialLinkError):
        await link.read(0.01)
    await link.reopen()  # the same path answers again
    os.write(master, b"back\n")
    assert await link.read(0.5) == b"back\n"
    await link.close()
    os.close(master)
    os.close(slave)
