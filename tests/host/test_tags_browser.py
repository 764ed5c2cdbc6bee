"""Tags end to end: `pev-charger run --sim --rfid`, the /sim page holds a tag to a port's
simulated PN532, the real driver reads it, and the station page shows the port charging; the same
tag stops it (headless Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.browser import CHROMIUM, Daemon, run_daemon

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
CHROMIUM_PRESENT = Path(CHROMIUM).exists()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with run_daemon(tmp_path, "--rfid", speed=2.0) as d:
        yield d


async def test_a_tag_from_the_sim_page_starts_and_stops_a_port(daemon: Daemon) -> None:
    assert CHROMIUM_PRESENT, "Debian's chromium is needed: `make test` installs it as root"
    daemon.api("POST", "/api/sim/ports/2/attach", {"model": "ebike-36v-500wh", "soc": 40})
    daemon.wait_for(lambda: daemon.port(2)["state"] == "ready")
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            sim = await browser.new_page()
            await sim.goto(daemon.url + "/sim")
            await expect(sim.locator("#tag-card")).to_be_visible()
            await sim.select_option("#tag-port", "2")
            await sim.fill("#tag-uid", "04A1B2C3D4E5F6")
            await sim.click("#tag-present")
            await expect(sim.locator("#tag-state")).to_contain_text("held to port 2")
            station = await browser.new_page()
            await station.goto(daemon.url + "/")
            daemon.wait_for(lambda: daemon.port(2)["state"] == "charging")
            # Held again past the repeat window (3 s of simulated time), it ends its session.
            await sim.wait_for_timeout(4000)
            await sim.click("#tag-present")
            daemon.wait_for(lambda: daemon.port(2)["state"] in ("done", "ready"))
            await sim.select_option("#tag-port", "1")  # nothing plugged in: refused, and said
            await sim.click("#tag-present")
            await expect(station.locator("#action-error")).to_contain_text(
                "port 1 is not ready to start", timeout=15_000
            )
        finally:
            await browser.close()
