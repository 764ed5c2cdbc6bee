"""The site meter end to end: `pev-charger run --sim --meter sim`, the /sim page makes the meter
drop out, and the station page shows the fallback until readings return (headless Chromium)."""

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
    with run_daemon(tmp_path, "--meter", "sim", speed=5.0) as d:
        yield d


async def test_meter_drop_out_shown_on_the_station_page(daemon: Daemon) -> None:
    assert CHROMIUM_PRESENT, "Debian's chromium is needed: `make test` installs it as root"

    def following_the_meter() -> bool:
        budget = daemon.api("GET", "/api/station")["budget"]
        return bool(budget["kind"] == "modbus" and budget["active"] == "meter")

    daemon.wait_for(following_the_meter)
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            station = await browser.new_page()
            await station.goto(daemon.url + "/")
            await expect(station.locator("#budget-source")).to_contain_text("site meter")
            await expect(station.locator("#budget-fallback")).to_be_hidden()
            sim = await browser.new_page()
            await sim.goto(daemon.url + "/sim")
            await expect(sim.locator("#meter-state")).to_contain_text("Answering")
            await sim.click("#meter-toggle")
            await expect(sim.locator("#meter-state")).to_contain_text("Not answering")
            # stale_after_s is 10 s of simulated time: 2 s of real time at speed 5.
            alert = station.locator("#budget-fallback")
            await expect(alert).to_be_visible(timeout=15_000)
            await expect(alert).to_contain_text("150 W")
            assert daemon.api("GET", "/api/station")["budget_w"] == 150.0
            await sim.click("#meter-toggle")
            await expect(alert).to_be_hidden(timeout=15_000)
            await expect(station.locator("#budget-source")).to_contain_text("site meter")
        finally:
            await browser.close()
