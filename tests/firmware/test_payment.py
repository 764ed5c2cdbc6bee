"""Payment before power: the relay stays open until the hold is authorised; energy is charged."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.config import PaymentConfig
from firmware.payment import DemoProvider, PaymentDeclined, PaymentDesk, luhn_ok
from firmware.station.port import PortState
from tests.support import make_bench


async def test_the_demo_provider_approves_and_declines_its_test_cards() -> None:
    provider = DemoProvider()
    auth = await provider.authorise("4242 4242 4242 4242", 10.0, "EUR")
    assert auth.card_last4 == "4242" and auth.amount == 10.0
    with pytest.raises(PaymentDeclined, match="declined"):
        await provider.authorise("4000000000000002", 10.0, "EUR")
    with pytest.raises(PaymentDeclined, match="insufficient funds"):
        await provider.authorise("4000000000009995", 10.0, "EUR")
    with pytest.raises(PaymentDeclined, match="not a valid card number"):
        await provider.authorise("4242424242424241", 10.0, "EUR")
    with pytest.raises(PaymentDeclined, match="above what was authorised"):
        await provider.capture(auth, 10.01)
    assert luhn_ok("5555555555554444") and not luhn_ok("5555555555554445")


def test_the_price_is_energy_plus_fee_and_never_more_than_the_hold() -> None:
    config = PaymentConfig(enabled=True, price_per_kwh=0.40, session_fee=0.50, preauth_amount=10.0)
    desk = PaymentDesk(config, DemoProvider(), None, lambda: 0.0)
    assert desk.price(500.0) == (0.20, 0.70)
    assert desk.price(0.0) == (0.0, 0.50)
    assert desk.price(100_000.0) == (40.0, 10.0)


async def test_a_paid_session_charges_only_after_authorisation_and_is_captured_at_the_end(
    tmp_path: Path,
) -> None:
    async with make_bench(tmp_path, payment_required=True) as bench:
        config = PaymentConfig(enabled=True)
        desk = PaymentDesk(config, DemoProvider(), bench.store, bench.clock.wall)
        bench.station.on_end = desk.settle
        await bench.bay.attach(1, "ebike-36v-500wh", 40.0)
        await bench.run_until(lambda: bench.port(1).state == PortState.READY)
        session = await bench.station.start(1)
        await bench.run_for(3.0)
        assert bench.port(1).state == PortState.PAYMENT
        assert not bench.hardware.ports[1].relay.is_closed

        with pytest.raises(PaymentDeclined):
            await desk.authorise(session, "4000000000000002")
        await bench.run_for(1.0)
        assert bench.port(1).state == PortState.PAYMENT
        assert not bench.hardware.ports[1].relay.is_closed

        receipt = await desk.authorise(session, "4242424242424242")
        assert await bench.station.payment_approved(1, session)
        await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
        assert bench.hardware.ports[1].relay.is_closed
        await bench.run_for(10.0)
        await bench.station.stop(1)
        await bench.run_until(lambda: receipt.status == "captured", timeout=10)
        assert receipt.energy_kwh == pytest.approx(session.energy_wh / 1000)
        assert receipt.total == pytest.approx(desk.price(session.energy_wh)[1])
        assert session.session_id is not None
        await bench.run_for(0.2)
        payments = await bench.store.payments(session.session_id)
        assert [p["status"] for p in payments] == ["authorised", "captured"]


async def test_an_unpaid_session_ends_after_the_payment_window(tmp_path: Path) -> None:
    async with make_bench(tmp_path, payment_required=True, payment_window_s=60.0) as bench:
        await bench.bay.attach(1, "ebike-36v-500wh", 40.0)
        await bench.run_until(lambda: bench.port(1).state == PortState.READY)
        await bench.station.start(1)
        await bench.run_for(59.0, step=0.1)
        assert bench.port(1).state == PortState.PAYMENT
        await bench.run_until(lambda: bench.port(1).state == PortState.DONE, timeout=5)
        last = bench.port(1).last_session
        assert last is not None and last.end_reason == "payment"
        assert "No payment" in (last.end_text or "")
        assert not bench.hardware.ports[1].relay.is_closed
