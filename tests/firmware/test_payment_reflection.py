"""A signed message is good for one purpose only. The station and its provider share one secret
and sign ``timestamp.body`` both ways, so the bytes of the provider's callback (seen by anyone on
the path to the station's callback address) must not pass as a signed request to the provider's
own API, where a capture takes its amount from the body and the authorisation from the path."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from firmware.checkout import SIGNATURE_HEADER, TIMESTAMP_HEADER
from firmware.station.port import PortState
from tests.firmware.test_payment import paying


async def test_a_callback_replayed_to_the_providers_capture_is_refused(tmp_path: Path) -> None:
    async with paying(tmp_path) as scene:
        seen: list[tuple[bytes, dict[str, str]]] = []
        station_callback = scene.desk.callback_url

        async def relay(request: web.Request) -> web.Response:
            """The path between the provider and the station: it only reads what passes."""
            body = await request.read()
            headers = {k: request.headers[k] for k in (TIMESTAMP_HEADER, SIGNATURE_HEADER)}
            seen.append((body, headers))
            async with scene.http.post(station_callback, data=body, headers=headers) as r:
                return web.Response(status=r.status, body=await r.read())

        relay_app = web.Application()
        relay_app.router.add_post("/callback", relay)
        relay_server = TestServer(relay_app)
        await relay_server.start_server()
        try:
            scene.desk.callback_url = str(relay_server.make_url("/callback"))
            started = await scene.start()
            back = await scene.pay(await scene.checkout(started), "4242 4242 4242 4242")
            assert back.status == 303
            await scene.bench.run_until(lambda: scene.bench.port(1).state == PortState.CHARGING)
            receipt = scene.desk.receipts[started["public_token"]]
            assert len(seen) == 1
            body, headers = seen[0]
            headers = {**headers, "Content-Type": "application/json"}
            url = f"{scene.demo.public_base}/v1/authorisations/{receipt.reference}/capture"
            async with scene.http.post(url, data=body, headers=headers) as r:
                status = r.status
            assert status != 200, "the callback's bytes captured the whole hold"
            assert scene.demo.holds[receipt.reference].captured is None
        finally:
            await relay_server.close()
