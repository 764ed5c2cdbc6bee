"""A port's view is built only when someone gets it: once per batch for the web clients, never for
a brief listener (the metrics); a shown time to full is worked out again only when it moved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware.events import EventHub
from firmware.station import views
from firmware.station.port import PortState
from tests.support import make_bench


class Counted:
    """A port's builders that count their calls."""

    def __init__(self, port_id: int) -> None:
        self.port_id = port_id
        self.views = 0
        self.briefs = 0
        self.n = 0

    def view(self) -> dict[str, Any]:
        self.views += 1
        return {"id": self.port_id, "state": "charging", "n": self.n}

    def brief(self) -> dict[str, Any]:
        self.briefs += 1
        return {"id": self.port_id, "state": "charging"}

    def publish(self, hub: EventHub, state: str = "charging") -> None:
        self.n += 1
        hub.publish_port(self.port_id, state, self.view, self.brief)


async def test_a_port_view_is_built_once_per_batch_however_often_the_port_changes() -> None:
    hub = EventHub()
    streams = [hub.stream() for _ in range(20)]
    ports = [Counted(i) for i in range(1, 9)]
    for _ in range(50):
        for port in ports:
            port.publish(hub)
    assert all(p.views == 0 and p.briefs == 0 for p in ports)  # nothing built yet
    assert hub.flush()
    assert all(p.views == 1 for p in ports)  # the latest, built when the batch went out
    chunk = await streams[0].get()
    assert chunk is not None and chunk.count(b"event: port") == 8 and b'"n":50' in chunk
    assert not hub.flush()  # nothing changed since
    for port in ports:
        port.n -= 1  # the view comes out the same as the one sent: not sent again
        port.publish(hub)
    assert not hub.flush()
    assert all(p.views == 2 for p in ports)
    await hub.aclose()


async def test_a_brief_listener_gets_facts_and_no_view_is_built_for_it() -> None:
    hub = EventHub()
    port = Counted(3)
    with hub.subscribe(brief=True) as sub:
        for _ in range(10):
            port.publish(hub)
        assert port.views == 0 and port.briefs == 10
        event = sub.queue.get_nowait()
        assert event["type"] == "port" and event["data"] == {"id": 3, "state": "charging"}
        with hub.subscribe() as full:
            port.publish(hub)
            assert port.views == 1 and port.briefs == 11  # each built once for its listeners
            assert full.queue.get_nowait()["data"]["n"] == port.n
    await hub.aclose()


async def test_a_new_state_is_still_urgent_when_the_view_is_built_later() -> None:
    hub = EventHub()
    stream = hub.stream()
    port = Counted(1)
    port.publish(hub, "ready")
    assert hub._urgent
    hub.flush()
    port.publish(hub, "ready")
    assert not hub._urgent  # only figures: waits for the quiet interval
    port.publish(hub, "charging")
    assert hub._urgent
    stream.close()
    await hub.aclose()


async def test_metrics_and_mqtt_style_listeners_build_no_views(tmp_path: Path) -> None:
    """On a charging bench with a brief listener only, no port view (and no time to full) is
    built for the port's changes."""
    async with make_bench(tmp_path, ports=1) as bench:
        built = [0]
        original = bench.station.events.publish_port

        def counting(port_id: int, state: str, view: Any, brief: Any) -> None:
            def counted() -> dict[str, Any]:
                built[0] += 1
                result: dict[str, Any] = view()
                return result

            original(port_id, state, counted, brief)

        bench.station.events.publish_port = counting  # type: ignore[method-assign]
        with bench.station.events.subscribe(brief=True) as sub:
            await bench.charging(1, "ebike-36v-500wh")
            await bench.run_for(10.0)
            assert sub.queue.qsize() > 0
            got = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
            facts = [event["data"] for event in got if event["type"] == "port"]
        assert built[0] == 0
        assert facts[-1]["state"] == "charging" and facts[-1]["session"]["energy_wh"] > 0


async def test_the_shown_time_to_full_is_worked_out_again_only_when_it_moved(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with make_bench(tmp_path, ports=1) as bench:
        await bench.charging(1, "ebike-36v-500wh")
        await bench.run_for(30.0)
        port = bench.port(1)
        assert port.state == PortState.CHARGING
        calls = [0]
        original = views.eta_estimate

        def counted(p: Any) -> Any:
            calls[0] += 1
            return original(p)

        monkeypatch.setattr(views, "eta_estimate", counted)
        first = views.shown_eta(port)
        assert first is not None and calls[0] == 1
        await bench.run_for(1.0)
        again = views.shown_eta(port)
        assert calls[0] == 1  # a second later: the same estimate, a second shorter
        assert again is not None and again.seconds == pytest.approx(first.seconds - 1.0)
        await bench.run_for(views.ETA_REFRESH_S)
        views.shown_eta(port)
        assert calls[0] == 2  # at most every few seconds
        port.grant_a = port.grant_a / 2  # what the page shows moved: at once
        views.shown_eta(port)
        assert calls[0] == 3


async def test_a_port_event_carries_the_curve_only_when_it_gained_a_point(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=1) as bench:
        await bench.charging(1, "ebike-36v-500wh")
        port = bench.port(1)
        events = views.EventViews()
        first = events.view(port)
        assert "curve" in first["session"]  # the first event of the session: the whole curve
        again = events.view(port)
        assert "curve" not in again["session"]  # nothing new: the reader keeps the one it has
        assert again["session"]["energy_wh"] == first["session"]["energy_wh"]
        await bench.run_for(bench.station.settings.sample_period_s + 0.1)
        later = events.view(port)
        assert later["session"]["curve"] == bench.station.port_view(port)["session"]["curve"]
        assert len(later["session"]["curve"]) > len(first["session"]["curve"])


async def test_a_view_built_for_a_listener_serves_the_web_clients_too() -> None:
    hub = EventHub()
    stream = hub.stream()
    port = Counted(2)
    with hub.subscribe():
        port.publish(hub)
        assert port.views == 1
        assert hub.flush() and port.views == 1  # the same view, not built again
        chunk = await stream.get()
        assert chunk is not None and b'"n":1' in chunk
        port.n -= 1  # the same view again: built for the listener, not sent to the clients
        port.publish(hub)
        assert not hub.flush()
    stream.close()
    await hub.aclose()
