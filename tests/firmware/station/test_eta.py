"""Time-to-full follows the constant-current / constant-voltage shape, not a straight line."""

from __future__ import annotations

import pytest

from firmware.station.eta import EtaInput, cv_onset_soc, estimate_seconds, straight_line_seconds


def ebike(soc: float, amps: float = 4.0, in_cv: bool = False) -> EtaInput:
    return EtaInput(
        soc_pct=soc, capacity_wh=500.0, v_nom_v=36.0, v_max_v=42.0, current_a=amps, in_cv=in_cv
    )


def test_cv_begins_earlier_at_higher_c_rates() -> None:
    assert 80 <= cv_onset_soc(0.2) <= 88
    assert cv_onset_soc(1.0) < cv_onset_soc(0.5) < cv_onset_soc(0.2)


def test_eta_from_empty_is_longer_than_the_straight_line() -> None:
    eta = estimate_seconds(ebike(20.0))
    naive = straight_line_seconds(20.0, 500.0, 4.0 * 38.0)
    assert eta is not None and naive is not None
    assert eta > naive  # the taper takes longer than full power would
    assert 2.5 * 3600 < eta < 5.5 * 3600  # a 4 A charger fills a 500 Wh pack in about 4-5 h


def test_eta_in_the_taper_is_shorter_than_the_straight_line() -> None:
    eta = estimate_seconds(ebike(95.0, amps=0.6, in_cv=True))
    naive = straight_line_seconds(95.0, 500.0, 0.6 * 42.0)
    assert eta is not None and naive is not None
    assert eta < naive * 1.5


def test_eta_shrinks_as_the_charge_goes_on() -> None:
    etas = [estimate_seconds(ebike(soc)) for soc in (10, 30, 50, 70)]
    assert all(a is not None for a in etas)
    assert etas == sorted(etas, reverse=True)  # type: ignore[type-var]


def test_eta_is_zero_at_target_and_unknown_without_current() -> None:
    assert estimate_seconds(ebike(100.0)) == 0.0
    assert estimate_seconds(ebike(50.0, amps=0.0)) is None


@pytest.mark.parametrize("target", [60.0, 80.0, 90.0])
def test_a_target_below_full_is_sooner(target: float) -> None:
    full = estimate_seconds(ebike(40.0))
    partial = estimate_seconds(EtaInput(40.0, 500.0, 36.0, 42.0, 4.0, target_soc_pct=target))
    assert full is not None and partial is not None and partial < full


def test_the_observed_taper_gives_the_time_to_the_cut_off() -> None:
    """I(t) = 3 A x exp(-t / 1200 s): from 2 A to a C/20 cut-off of 0.5 A takes 1200 ln 4 s."""
    import math

    from firmware.station.eta import taper_seconds

    tau = 1200.0
    taper = [(t, 3.0 * math.exp(-t / tau)) for t in range(0, 300, 10)]
    current = 3.0 * math.exp(-300 / tau)
    expected = tau * math.log(current / 0.5)
    assert taper_seconds(taper, current, capacity_ah=10.0) == pytest.approx(expected, rel=1e-6)
    assert taper_seconds(taper[:3], current, capacity_ah=10.0) is None  # not a minute yet
    assert taper_seconds(taper, 0.4, capacity_ah=10.0) == 0.0
