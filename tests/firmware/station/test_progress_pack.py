"""The pack an estimate starts from: the declared one, corrected by history, then by the session.

``base_pack`` keeps the declared pack while the port holds the same BATT and applies the
corrections in one construction; it must give exactly the pack the corrections applied one after
another give, and follow a new BATT at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from firmware.pevlink import Battery
from firmware.station.eta_history import Learned, model_key
from firmware.station.pack import Pack, declared_pack
from firmware.station.progress import NEW_SESSION_HISTORY, Tracker, base_pack


@dataclass(eq=False)
class HeldPort:
    """What base_pack reads of a port: its BATT (the history is the one of ports with no fleet)."""

    battery: Battery | None
    taper: list[tuple[float, float]] = field(default_factory=list)


def battery(capacity_wh: float = 360.0, i_end_a: float | None = None) -> Battery:
    return Battery(
        chemistry="NMC",
        cells_series=10,
        v_nom_v=36.0,
        v_max_v=42.0,
        v_min_v=30.0,
        capacity_wh=capacity_wh,
        i_max_a=2.0,
        i_min_a=0.2,
        t_min_c=0.0,
        t_max_c=45.0,
        soc_pct=40.0,
        temperature_c=25.0,
        i_end_a=i_end_a,
    )


def corrected_one_by_one(b: Battery, learned: Learned | None, tracker: Tracker | None) -> Pack:
    """The corrections as they were applied before: one replace() each."""
    pack = declared_pack(
        b.chemistry, b.cells_series, b.capacity_wh, b.v_nom_v, b.v_max_v, b.i_end_a
    )
    if learned is not None:
        pack = replace(
            pack,
            capacity_ah=pack.capacity_ah * learned.capacity_ratio,
            cutoff_a=learned.cutoff_c * pack.capacity_ah if b.i_end_a is None else pack.cutoff_a,
            r_group_ohm=learned.r_group_ohm,
            lead_pct=learned.lead_pct,
        )
    if tracker is not None:
        if tracker.capacity_ratio is not None:
            pack = replace(pack, capacity_ah=b.capacity_wh / b.v_nom_v * tracker.capacity_ratio)
        if tracker.r_group_ohm is not None:
            pack = replace(pack, r_group_ohm=tracker.r_group_ohm)
    return pack


@pytest.mark.parametrize("i_end_a", [None, 0.31])
@pytest.mark.parametrize("has_learned", [False, True])
@pytest.mark.parametrize("ratio, r_ohm", [(None, None), (0.937, None), (None, 0.051), (1.11, 0.04)])
def test_the_pack_is_the_corrections_applied_one_after_another(
    i_end_a: float | None, has_learned: bool, ratio: float | None, r_ohm: float | None
) -> None:
    b = battery(capacity_wh=361.0 + (i_end_a or 0.0), i_end_a=i_end_a)
    port = HeldPort(b)
    model = model_key(b.chemistry, b.cells_series, b.capacity_wh, b.i_max_a)
    learned = Learned(capacity_ratio=0.91, cutoff_c=0.027, r_group_ohm=0.043, lead_pct=1.3)
    NEW_SESSION_HISTORY.models.pop(model, None)
    if has_learned:
        NEW_SESSION_HISTORY.models[model] = learned
    try:
        tracker = Tracker(session=object(), model=model, capacity_ratio=ratio, r_group_ohm=r_ohm)
        for _ in range(2):  # built, then with the declared pack kept
            got = base_pack(port, model, tracker)  # type: ignore[arg-type]
            assert got == corrected_one_by_one(b, learned if has_learned else None, tracker)
        got = base_pack(port, model, None)  # type: ignore[arg-type]
        assert got == corrected_one_by_one(b, learned if has_learned else None, None)
    finally:
        NEW_SESSION_HISTORY.models.pop(model, None)


def test_a_new_batt_is_followed_at_once() -> None:
    port = HeldPort(battery(360.0))
    first = base_pack(port, None, None)  # type: ignore[arg-type]
    port.battery = battery(480.0)
    second = base_pack(port, None, None)  # type: ignore[arg-type]
    assert first is not None and second is not None
    assert second.capacity_ah == pytest.approx(480.0 / 36.0)
    assert second == corrected_one_by_one(battery(480.0), None, None)
    port.battery = None
    assert base_pack(port, None, None) is None  # type: ignore[arg-type]
