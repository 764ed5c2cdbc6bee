"""QR codes as SVG, drawn by the station itself (a station often has no internet).

Drawing one takes tens of milliseconds (more on a Pi), so it happens on a worker thread, never on
the event loop, and each code is kept: a session's links do not change, and a kiosk or a crowd of
phones asking again costs nothing. Concurrent requests for one code share one drawing.
"""

from __future__ import annotations

import asyncio
import io
from collections import OrderedDict

import qrcode
import qrcode.image.svg


def qr_svg(data: str) -> bytes:
    image = qrcode.make(
        data,
        image_factory=qrcode.image.svg.SvgPathFillImage,
        box_size=10,
        border=4,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
    )
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


class QrCache:
    """The last ``size`` codes drawn (two per session: the viewer's and the owner's link)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._codes: OrderedDict[str, asyncio.Future[bytes]] = OrderedDict()
        self.drawn = 0

    async def svg(self, data: str) -> bytes:
        found = self._codes.get(data)
        if found is None or (found.done() and found.exception() is not None):
            found = asyncio.ensure_future(self._draw(data))
            self._codes[data] = found
            while len(self._codes) > self.size:
                self._codes.popitem(last=False)
        else:
            self._codes.move_to_end(data)
        return await asyncio.shield(found)

    async def _draw(self, data: str) -> bytes:
        self.drawn += 1
        return await asyncio.to_thread(qr_svg, data)
