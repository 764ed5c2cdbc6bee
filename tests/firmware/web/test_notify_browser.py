""" "Notify me when done" in a real Chromium: offered only where the browser allows notifications.

On the bench's plain-HTTP LAN address (how a phone reaches the station) the page is not a secure
context, so it offers no notification, says how to get one, and offers a sound and a vibration
while it stays open; on a secure origin (loopback counts as one) the notification is offered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, expect

from tests.browser import Daemon, chromium, run_daemon

PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with run_daemon(tmp_path_factory.mktemp("notify")) as d:
        yield d


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


async def test_the_phone_page_offers_notifications_only_where_the_browser_allows_them(
    daemon: Daemon, browser: Browser
) -> None:
    daemon.api("POST", "/api/sim/ports/1/attach", {"model": "ebike-36v-500wh", "soc": 40})
    daemon.wait_for(lambda: daemon.port(1)["state"] == "ready")
    started = daemon.api("POST", "/api/ports/1/start")
    assert started["owner_url"].startswith("http://") and "127.0.0.1" not in started["owner_url"]

    # a secure origin (loopback is one): the notification is offered
    secure = await browser.new_page(viewport=PHONE)
    await secure.goto(started["owner_url"].replace(daemon.public_url, daemon.url))
    assert await secure.evaluate("window.isSecureContext") is True
    await expect(secure.locator("#notify")).to_be_visible()
    await expect(secure.locator("#alert-here")).to_be_hidden()
    await expect(secure.locator("#notify-help")).to_be_hidden()

    # the phone's plain-HTTP LAN address: no notification; what to do instead
    phone = await browser.new_page(viewport=PHONE)
    await phone.add_init_script(
        "navigator.vibrate = (pattern) => { window.vibrated = pattern; return true; };"
    )
    await phone.goto(started["owner_url"])
    assert await phone.evaluate("window.isSecureContext") is False
    await expect(phone.locator("#status")).to_contain_text("Charging", timeout=20_000)
    await expect(phone.locator("#notify")).to_be_hidden()
    help_line = phone.locator("#notify-help")
    await expect(help_line).to_contain_text("secure (https) address")
    await expect(help_line).to_contain_text("sound and vibration")
    await phone.click("#alert-here")
    await expect(help_line).to_contain_text("plays a sound and vibrates")
    await expect(phone.locator("#alert-here")).to_be_hidden()

    daemon.api("POST", "/api/ports/1/stop")
    await expect(phone.locator("#alert-here")).to_have_attribute(
        "data-alerted", "1", timeout=20_000
    )
    await expect(help_line).to_contain_text("Charging stopped")
    assert await phone.evaluate("window.vibrated") == [300, 150, 300, 150, 300]
    sw = await phone.request.get(daemon.url + "/sw.js")
    assert sw.ok and "notificationclick" in await sw.text()
