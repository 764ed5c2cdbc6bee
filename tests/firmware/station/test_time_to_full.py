"""The time-to-full model always ends, and says something sane, whatever current it is offered.

It runs on the station's event loop for every port on the phone page: a loop that does not end
there stops the supervisor, and the safety core then opens every switch.
"""

from __future__ import annotations

import threading

import pytest

from firmware.station.pack import Pack, constant, declared_pack, time_to_full


def finished_within(seconds: float, pack: Pack, soc: float, amps: float) -> list[float | None]:
    """time_to_full run in a thread that must end within ``seconds`` of real time."""
    answer: list[float | None] = []
    worker = threading.Thread(
        target=lambda: answer.append(time_to_full(pack, soc, constant(amps))), daemon=True
    )
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"time_to_full did not end at {amps} A from {soc} %"
    return answer


def test_a_current_below_the_cut_off_ends_the_estimate_where_the_taper_begins() -> None:
    # The case seen in a day-long scenario: a 15.3 Ah pack (cut-off 0.77 A) offered 0.32 A.
    pack = declared_pack("NMC", 10, 15.3 * 36.0, 36.0, 42.0)
    assert pack.cutoff_a > 0.32
    (seconds,) = finished_within(10.0, pack, 34.2, 0.32)
    assert seconds is not None
    # 65.8 % of 15.3 Ah at 0.32 A takes about 31 h, less the part above the taper's start.
    assert 20 * 3600 < seconds < 32 * 3600


@pytest.mark.parametrize("amps", [0.05, 0.3, 0.76, 0.77, 0.8, 2.0, 5.0])
@pytest.mark.parametrize("soc", [0.0, 34.2, 90.0, 99.9, 99.999999999])
def test_the_estimate_ends_for_any_current_and_charge(amps: float, soc: float) -> None:
    pack = declared_pack("NMC", 10, 15.3 * 36.0, 36.0, 42.0)
    (seconds,) = finished_within(10.0, pack, soc, amps)
    assert seconds is None or 0.0 <= seconds <= 48 * 3600


def test_a_larger_offer_never_takes_longer() -> None:
    pack = declared_pack("NMC", 10, 15.3 * 36.0, 36.0, 42.0)
    times = [time_to_full(pack, 34.2, constant(a)) for a in (0.3, 0.5, 0.77, 1.0, 2.0, 4.0)]
    known = [t for t in times if t is not None]
    assert len(known) == len(times)
    assert known == sorted(known, reverse=True)
