"""Time-to-full from the battery's constant-current / constant-voltage behaviour.

A straight line (energy left / power now) is wrong twice: early it ignores the taper, which takes a
long time for the last 15-25 %; late in the taper it sees a small power and predicts hours. Here
the charge is split into a constant-current part up to the state of charge where constant voltage
begins (earlier at higher C-rates) and an exponential taper from the current at that point down to
the cut-off current.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EtaInput:
    soc_pct: float
    capacity_wh: float
    v_nom_v: float
    v_max_v: float
    current_a: float
    """The current the vehicle gets now (measured, or granted before power-on)."""
    in_cv: bool = False
    """The vehicle is already tapering (its voltage sits at its maximum)."""
    target_soc_pct: float = 100.0
    cutoff_frac_c: float = 0.05
    """Cut-off current as a fraction of C (C/20 by default)."""


def cv_onset_soc(c_rate: float) -> float:
    """State of charge where constant voltage begins: ~85 % at C/5, ~70 % at 1C."""
    return max(60.0, min(90.0, 88.0 - 18.0 * c_rate))


def estimate_seconds(x: EtaInput) -> float | None:
    """Seconds until the vehicle reaches its target (or full); None when it cannot be told."""
    if x.capacity_wh <= 0 or x.v_nom_v <= 0 or x.current_a <= 0.01:
        return None
    target = min(100.0, x.target_soc_pct)
    if x.soc_pct >= target:
        return 0.0
    capacity_ah = x.capacity_wh / x.v_nom_v
    c_rate = x.current_a / capacity_ah
    onset = cv_onset_soc(c_rate)
    cutoff_a = max(0.02, x.cutoff_frac_c * capacity_ah)
    seconds = 0.0
    soc = x.soc_pct
    i_cv = x.current_a
    if not x.in_cv and soc < onset:
        cc_end = min(onset, target)
        energy_wh = (cc_end - soc) / 100.0 * x.capacity_wh
        mean_v = x.v_nom_v + (x.v_max_v - x.v_nom_v) * ((soc + cc_end) / 200.0)
        seconds += energy_wh / (mean_v * x.current_a) * 3600.0
        soc = cc_end
        if soc >= target:
            return seconds
    elif x.in_cv:
        # Already tapering: infer where in the taper we are from the current itself.
        i_cv = x.current_a
    if i_cv <= cutoff_a:
        return seconds
    # Charge left in the taper (Ah) = I0 * tau * (1 - Icut/I0) for an exponential decay.
    charge_ah = max(0.0, (100.0 - soc) / 100.0) * capacity_ah
    tau_h = charge_ah / max(1e-6, i_cv - cutoff_a)
    if target >= 100.0:
        seconds += tau_h * math.log(i_cv / cutoff_a) * 3600.0
    else:
        needed_ah = (target - soc) / 100.0 * capacity_ah
        fraction = min(0.999, needed_ah / max(1e-9, i_cv * tau_h))
        seconds += -tau_h * math.log(1.0 - fraction) * 3600.0
    return seconds


def taper_seconds(
    taper: list[tuple[float, float]],
    current_a: float,
    capacity_ah: float,
    cutoff_frac_c: float = 0.05,
) -> float | None:
    """Time to the cut-off from the taper actually observed: I(t) = I0 exp(-t / tau).

    Once the vehicle has been in constant voltage for a minute, its own decay says more than any
    model of its battery; None until then.
    """
    if len(taper) < 3:
        return None
    (t0, i0), (t1, i1) = taper[0], taper[-1]
    if t1 - t0 < 60.0 or i1 <= 0.0 or i0 <= i1 * 1.02:
        return None
    tau_s = (t1 - t0) / math.log(i0 / i1)
    cutoff_a = max(0.02, cutoff_frac_c * capacity_ah)
    if current_a <= cutoff_a:
        return 0.0
    return tau_s * math.log(current_a / cutoff_a)


def straight_line_seconds(soc_pct: float, capacity_wh: float, power_w: float) -> float | None:
    """The naive estimate, kept for comparison in the benchmarks."""
    if power_w <= 0.5:
        return None
    return (100.0 - soc_pct) / 100.0 * capacity_wh / power_w * 3600.0
