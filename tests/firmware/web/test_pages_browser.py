"""The pages in a real headless Chromium (Debian's), against a real daemon on the bench."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import ROOT, Daemon, chromium, decode_qr, run_daemon

SCREENSHOTS = ROOT / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with run_daemon(tmp_path_factory.mktemp("bench")) as d:
        yield d


@pytest.fixture(scope="module")
def paying_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with run_daemon(tmp_path_factory.mktemp("paying"), "--payment") as d:
        yield d


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


async def attach_on_sim_page(
    page: Page, daemon: Daemon, port: int, model: str, **form: str
) -> None:
    await page.goto(daemon.url + "/sim")
    await page.select_option("#model", model)
    await page.select_option("#port", str(port))
    for field, value in form.items():
        await page.fill(f"#{field}", value)
    await page.click("#attach")
    await expect(page.locator(f"#bay-{port} .vehicle-name")).to_be_visible(timeout=10_000)


async def start_on_station_page(page: Page, daemon: Daemon, port: int) -> None:
    await page.goto(daemon.url + "/")
    card = page.locator(f"#port-{port}")
    await expect(card).to_have_attribute("data-state", "ready", timeout=20_000)
    await card.locator("[data-action=start]").click()
    await expect(page.locator("#qr-modal")).to_be_visible()


def detach_all(daemon: Daemon) -> None:
    for entry in daemon.api("GET", "/api/sim/ports")["ports"]:
        if entry["vehicle"] is not None:
            daemon.api("POST", f"/api/sim/ports/{entry['id']}/detach")


async def test_the_whole_journey_from_sim_to_phone_to_fault(
    daemon: Daemon, browser: Browser, tmp_path: Path
) -> None:
    detach_all(daemon)
    station = await browser.new_page(viewport={"width": 1280, "height": 900})
    await attach_on_sim_page(station, daemon, 1, "ebike-36v-500wh", soc="30")
    await start_on_station_page(station, daemon, 1)

    qr = station.locator("#qr-image")
    await expect(qr).to_have_js_property("complete", True)
    await station.wait_for_function("document.getElementById('qr-image').naturalWidth > 0")
    png = tmp_path / "qr.png"
    await qr.screenshot(path=str(png))
    url = decode_qr(png)
    assert re.fullmatch(re.escape(daemon.public_url) + r"/s/[\w-]{22,}\?owner=[\w-]{22,}", url), url

    phone_context = await browser.new_context(viewport=PHONE, is_mobile=True)
    phone = await phone_context.new_page()
    await phone.goto(url)
    await expect(phone.locator("#status")).to_have_text(re.compile("Charging"), timeout=20_000)
    first = await phone.locator("#energy").text_content()
    await expect(phone.locator("#energy")).not_to_have_text(first or "", timeout=20_000)
    await expect(phone.locator("#stop")).to_be_visible()

    daemon.api("POST", "/api/sim/ports/1/fault", {"kind": "over_temperature"})
    await expect(phone.locator("#fault")).to_be_visible(timeout=10_000)
    await expect(phone.locator("#fault")).to_contain_text(
        re.compile(r"above its \d+ °C charging limit")
    )
    await expect(phone.locator("#status")).to_contain_text(re.compile("fault", re.I))
    await expect(station.locator("#port-1")).to_have_attribute("data-state", "fault")
    assert daemon.port(1)["relay_closed"] is False
    await phone_context.close()
    detach_all(daemon)


async def test_a_viewer_link_cannot_stop_and_a_wrong_token_gives_a_clear_page(
    daemon: Daemon, browser: Browser
) -> None:
    detach_all(daemon)
    daemon.api("POST", "/api/sim/ports/2/attach", {"model": "ebike-36v-500wh", "soc": 40})
    daemon.wait_for(lambda: daemon.port(2)["state"] == "ready")
    started = daemon.api("POST", "/api/ports/2/start")
    viewer = await browser.new_page(viewport=PHONE)
    await viewer.goto(started["viewer_url"])
    await expect(viewer.locator("#status")).to_be_visible()
    await expect(viewer.locator("#stop")).to_be_hidden()
    await expect(viewer.locator("#viewer-note")).to_contain_text("read-only")
    # Even a hand-made request from the viewer's page is refused, and the session goes on.
    status = await viewer.evaluate(
        "fetch(location.pathname.replace('/s/', '/api/sessions/') + '/stop', {method: 'POST'})"
        ".then(r => r.status)"
    )
    assert status == 403
    assert daemon.port(2)["session"]["live"] is True

    response = await viewer.goto(daemon.url + "/s/not-a-real-session-token-at-all")
    assert response is not None and response.status == 404
    await expect(viewer.locator("h1")).to_have_text("Session not found")
    await expect(viewer.locator(".alert")).to_contain_text("No charging session has this link")
    detach_all(daemon)


async def test_the_phone_page_comes_back_by_itself_after_the_connection_drops(
    daemon: Daemon, browser: Browser
) -> None:
    detach_all(daemon)
    daemon.api("POST", "/api/sim/ports/4/attach", {"model": "ebike-36v-500wh", "soc": 40})
    daemon.wait_for(lambda: daemon.port(4)["state"] == "ready")
    started = daemon.api("POST", "/api/ports/4/start")
    context = await browser.new_context(viewport=PHONE)
    # Keep a handle on the page's event streams, to cut one as a dropped network would.
    await context.add_init_script(
        "const Native = window.EventSource; window.__streams = [];"
        "window.EventSource = function (url) { const s = new Native(url);"
        " window.__streams.push(s); return s; };"
        "window.EventSource.prototype = Native.prototype;"
        "Object.assign(window.EventSource, {CONNECTING: 0, OPEN: 1, CLOSED: 2});"
    )
    phone = await context.new_page()
    await phone.goto(started["viewer_url"])
    await expect(phone.locator("#status")).to_have_text(re.compile("Charging"), timeout=20_000)
    await phone.evaluate(
        "const s = window.__streams.at(-1); s.close(); s.dispatchEvent(new Event('error'))"
    )
    await expect(phone.locator("#offline")).to_be_visible()
    await expect(phone.locator("#offline")).to_be_hidden(timeout=10_000)
    assert await phone.evaluate("window.__streams.length") >= 2
    before = await phone.locator("#energy").text_content()
    await expect(phone.locator("#energy")).not_to_have_text(before or "", timeout=20_000)
    await context.close()
    detach_all(daemon)


async def test_markup_in_a_vehicle_name_shows_as_text(daemon: Daemon, browser: Browser) -> None:
    detach_all(daemon)
    name = "<img src=x onerror=pwned=1>"
    page = await browser.new_page()
    await attach_on_sim_page(page, daemon, 3, "kids-scooter-24v", name=name)
    await expect(page.locator("#bay-3 .vehicle-name")).to_have_text(name)
    await page.goto(daemon.url + "/")
    await expect(page.locator("#port-3 .vehicle")).to_contain_text(name, timeout=20_000)
    assert await page.locator("#port-3 img").count() == 0
    assert await page.evaluate("window.pwned") is None
    detach_all(daemon)


async def pay_journey(daemon: Daemon, browser: Browser, card: str) -> tuple[Page, dict[str, str]]:
    """The owner's phone opens the provider's own page (another port: the demo provider, not
    the station), types the card there, and is sent back to the phone page."""
    detach_all(daemon)
    daemon.api("POST", "/api/sim/ports/1/attach", {"model": "ebike-36v-500wh", "soc": 40})
    daemon.wait_for(lambda: daemon.port(1)["state"] == "ready")
    started = daemon.api("POST", "/api/ports/1/start")
    assert daemon.port(1)["state"] == "payment"
    phone = await browser.new_page(viewport=PHONE)
    await phone.goto(started["owner_url"])
    await expect(phone.locator("#payment")).to_be_visible()
    await expect(phone.locator("#payment-terms")).to_contain_text("per kWh")
    await expect(phone.locator("#pay-how")).to_contain_text("never sees your card number")
    assert await phone.locator("input#card").count() == 0  # no card field on the station's page
    await provider_page(phone, daemon)
    await phone.fill("#card", card)
    await phone.click("#pay")
    return phone, started


async def provider_page(phone: Page, daemon: Daemon) -> None:
    await phone.click("#pay-button")
    await expect(phone.locator("h1")).to_have_text("Demo payment provider", timeout=10_000)
    assert not phone.url.startswith(daemon.public_url), phone.url


async def test_payment_approved_starts_the_charge_and_the_receipt_follows(
    paying_daemon: Daemon, browser: Browser
) -> None:
    phone, started = await pay_journey(paying_daemon, browser, "4242 4242 4242 4242")
    await expect(phone.locator("#receipt")).to_be_visible(timeout=10_000)
    assert phone.url.startswith(paying_daemon.public_url + "/s/")  # back on the phone page
    await expect(phone.locator("#receipt-table")).to_contain_text("4242")
    await expect(phone.locator("#status")).to_have_text(re.compile("Charging"), timeout=20_000)
    await expect(phone.locator("#energy")).not_to_have_text("0.00 Wh", timeout=20_000)
    await phone.click("#stop")
    await expect(phone.locator("#status")).to_contain_text("Stopped", timeout=20_000)
    await expect(phone.locator("#receipt-table")).to_contain_text("Total charged", timeout=10_000)
    await expect(phone.locator("#receipt-table")).to_contain_text("Paid")
    receipt = paying_daemon.api(
        "GET",
        f"/api/sessions/{started['public_token']}/receipt",
        headers={"X-Owner-Token": started["owner_token"]},
    )
    assert receipt["status"] == "captured" and receipt["total"] >= receipt["session_fee"]
    assert receipt["total"] <= receipt["authorised"]


async def test_payment_declined_keeps_the_relay_open(
    paying_daemon: Daemon, browser: Browser
) -> None:
    phone, _ = await pay_journey(paying_daemon, browser, "4000 0000 0000 0002")
    await expect(phone.locator("#pay-error")).to_contain_text("declined", timeout=10_000)
    await expect(phone.locator("#payment")).to_be_visible()
    port = paying_daemon.port(1)
    assert port["state"] == "payment" and port["relay_closed"] is False
    await provider_page(phone, paying_daemon)
    await phone.fill("#card", "1234")
    await phone.click("#pay")
    await expect(phone.locator("#error")).to_contain_text("not a valid card number")
    paying_daemon.api("POST", "/api/ports/1/stop")
    detach_all(paying_daemon)


async def test_screenshots_of_the_three_pages(
    daemon: Daemon, browser: Browser, tmp_path: Path
) -> None:
    """The three pages with live content; PEV_UPDATE_SCREENSHOTS=1 writes them to docs/."""
    out = SCREENSHOTS if os.environ.get("PEV_UPDATE_SCREENSHOTS") == "1" else tmp_path
    detach_all(daemon)
    daemon.api("POST", "/api/sim/ports/1/attach", {"model": "ebike-36v-500wh", "soc": 35})
    daemon.api("POST", "/api/sim/ports/2/attach", {"model": "onewheel-xr", "soc": 60})
    daemon.api("POST", "/api/sim/ports/4/attach", {"model": "scooter-ninebot-max", "soc": 15})
    daemon.wait_for(lambda: all(daemon.port(p)["state"] == "ready" for p in (1, 2, 4)))
    started = daemon.api("POST", "/api/ports/1/start")
    daemon.api("POST", "/api/ports/2/start")
    daemon.wait_for(
        lambda: daemon.port(1)["state"] == "charging" and daemon.port(2)["state"] == "charging"
    )
    out.mkdir(parents=True, exist_ok=True)

    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    await page.goto(daemon.url + "/")
    await expect(page.locator("#port-1")).to_have_attribute("data-state", "charging")
    await page.wait_for_timeout(1500)
    await page.screenshot(path=str(out / "station.png"), full_page=True)

    phone = await browser.new_page(viewport=PHONE, device_scale_factor=2)
    await phone.goto(started["owner_url"])
    await expect(phone.locator("#status")).to_have_text(re.compile("Charging"))
    await phone.wait_for_timeout(3000)
    await phone.screenshot(path=str(out / "phone.png"), full_page=True)

    sim = await browser.new_page(viewport={"width": 1280, "height": 900})
    await sim.goto(daemon.url + "/sim")
    await expect(sim.locator("#bay-1 .vehicle-name")).to_be_visible()
    await sim.wait_for_timeout(1200)
    await sim.screenshot(path=str(out / "simulator.png"), full_page=True)
    for name in ("station", "phone", "simulator"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    detach_all(daemon)
