"""A phone page open across a daemon restart: it finds out within seconds and shows the recorded
end of its session, with no Stop button and no endless reconnecting (real daemons, real
Chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.browser import CHROMIUM, run_daemon
from tests.support import free_port

PHONE = {"width": 390, "height": 844}
CHROMIUM_PRESENT = Path(CHROMIUM).exists()

pytestmark = pytest.mark.timeout(180)


async def test_a_live_phone_page_learns_that_the_station_restarted(tmp_path: Path) -> None:
    assert CHROMIUM_PRESENT, "Debian's chromium is needed: `make test` installs it as root"
    port = free_port()
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            with run_daemon(tmp_path, port=port) as first:
                first.api(
                    "POST", "/api/sim/ports/1/attach", {"model": "ebike-36v-500wh", "soc": 40}
                )
                first.wait_for(lambda: first.port(1)["state"] == "ready")
                started = first.api("POST", "/api/ports/1/start")
                first.wait_for(lambda: first.port(1)["state"] == "charging")
                phone = await browser.new_page(viewport=PHONE)
                requests: list[str] = []
                phone.on("request", lambda r: requests.append(r.url))
                await phone.goto(started["owner_url"])
                await expect(phone.locator("#status")).to_have_text(
                    re.compile("Charging"), timeout=20_000
                )
                await expect(phone.locator("#stop")).to_be_visible()
                first.process.kill()  # a crash: no goodbye to anyone
                first.process.wait(timeout=10)
                with run_daemon(tmp_path, port=port):
                    await expect(phone.locator("#status")).to_have_text(
                        "Stopped: the station restarted", timeout=15_000
                    )
                    await expect(phone.locator("#stop")).to_be_hidden()
                    await expect(phone.locator("#offline")).to_be_hidden()
                    await expect(phone.locator("#eta")).to_have_text("Done")
                    streams = sum(1 for url in requests if url.endswith("/events"))
                    await phone.wait_for_timeout(4_000)
                    after = sum(1 for url in requests if url.endswith("/events"))
                    assert after == streams  # no more retrying a stream that cannot come back
        finally:
            await browser.close()
