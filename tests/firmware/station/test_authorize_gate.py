"""The authorisation gate and a port out of service, on a bench station in simulated time.

The authoriser here is a plain coroutine the test answers by hand: the gate's own behaviour
(no power while pending, refusal, the deadline) is what is tested. The OCPP authoriser against a
real central system is tested in tests/firmware/ocpp/test_authorize.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from firmware.station.errors import StationError
from firmware.station.port import PortController, PortState
from firmware.station.session import Session
from firmware.station.sessions import AUTHORIZE_DEADLINE_S, Verdict
from tests.support import Bench, make_bench


class HandGate:
    """Holds every question until the test answers it."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, str | None]] = []
        self.answer: asyncio.Future[Verdict] | None = None

    async def __call__(self, port: PortController, session: Session) -> Verdict:
        self.asked.append((port.port_id, session.id_tag))
        self.answer = asyncio.get_running_loop().create_future()
        return await self.answer


async def ready(bench: Bench, port_id: int = 1) -> None:
    await bench.bay.attach(port_id, "ebike-36v-500wh", 40.0)
    await bench.run_until(lambda: bench.port(port_id).state == PortState.READY)


async def test_no_power_while_the_answer_is_pending_then_accepted(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=2) as bench:
        gate = HandGate()
        bench.station.authorizer = gate
        await ready(bench)
        session = await bench.station.start(1, id_tag="04A1B2C3")
        port = bench.port(1)
        assert port.state == PortState.AUTHORIZING
        await bench.run_for(5.0)  # several allocator rounds: nothing is granted
        assert gate.asked == [(1, "04A1B2C3")]
        assert port.state == PortState.AUTHORIZING and port.grant_a == 0.0
        assert not bench.hardware.ports[1].relay.is_closed
        assert port.state_text == "Waiting for the central system to authorise"
        assert gate.answer is not None
        gate.answer.set_result(Verdict(True))
        await bench.run_until(lambda: port.state == PortState.CHARGING)
        assert port.session is session


async def test_a_refused_tag_ends_the_session_with_its_words(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=2) as bench:
        gate = HandGate()
        bench.station.authorizer = gate
        await ready(bench)
        session = await bench.station.start(1, id_tag="DEADBEEF")
        await bench.run_until(lambda: gate.answer is not None)
        assert gate.answer is not None
        gate.answer.set_result(Verdict(False, "Not authorised: the tag is blocked"))
        port = bench.port(1)
        await bench.run_until(lambda: port.state == PortState.DONE)
        assert not bench.hardware.ports[1].relay.is_closed
        assert port.state_text == "Not authorised: the tag is blocked"
        assert session.end_reason == "operator"
        assert session.end_text == "Not authorised: the tag is blocked"
        assert session.energy_wh == 0.0


async def test_an_authoriser_that_never_answers_is_a_refusal(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=2) as bench:
        bench.station.authorizer = HandGate()
        await ready(bench)
        session = await bench.station.start(1)
        port = bench.port(1)
        await bench.run_until(lambda: port.state == PortState.DONE, AUTHORIZE_DEADLINE_S + 5, 0.1)
        assert session.end_text == "Not authorised: no answer in time"
        assert not bench.hardware.ports[1].relay.is_closed


async def test_a_stop_while_pending_ends_the_session(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=2) as bench:
        gate = HandGate()
        bench.station.authorizer = gate
        await ready(bench)
        session = await bench.station.start(1)
        await bench.station.stop(1)
        port = bench.port(1)
        await bench.run_until(lambda: port.state == PortState.DONE)
        assert session.end_reason == "user"
        assert gate.answer is not None
        gate.answer.set_result(Verdict(True))  # too late: that session is over
        await bench.run_for(1.0)
        assert port.state == PortState.DONE and not bench.hardware.ports[1].relay.is_closed


async def test_a_port_out_of_service_refuses_starts_and_tells_the_vehicle(
    tmp_path: Path,
) -> None:
    async with make_bench(tmp_path, ports=2, auto_start=True) as bench:
        bench.station.set_out_of_service(1, "Out of service (set by the central system)")
        await ready(bench)
        await bench.run_for(3.0)
        port = bench.port(1)
        assert port.state == PortState.READY and port.session is None  # no auto start
        assert port.state_text == "Out of service (set by the central system)"
        agent = bench.bay.bays[1].agent
        await bench.run_until(lambda: "Out of service" in (agent.station_text or ""))
        try:
            await bench.station.start(1)
        except StationError as exc:
            assert "out of service" in str(exc) and exc.status == 409
        else:
            raise AssertionError("a start on a port out of service was accepted")
        bench.station.set_out_of_service(1, None)
        await bench.run_until(lambda: port.state == PortState.CHARGING)  # auto start again


async def test_an_accepted_session_then_waits_for_payment(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=2, payment_required=True) as bench:
        gate = HandGate()
        bench.station.authorizer = gate
        started: list[Session] = []
        bench.station.on_start = lambda port, session: started.append(session)
        await ready(bench)
        session = await bench.station.start(1)
        assert started == []  # not started for the hooks before it is accepted
        await bench.run_until(lambda: gate.answer is not None)
        assert gate.answer is not None
        gate.answer.set_result(Verdict(True))
        port = bench.port(1)
        await bench.run_until(lambda: port.state == PortState.PAYMENT)
        assert started == [session]
        assert await bench.station.payment_approved(1, session)
        await bench.run_until(lambda: port.state == PortState.CHARGING)
