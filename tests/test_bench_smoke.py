"""The benchmarks still run, and what they measure still holds at smoke size."""

from __future__ import annotations

import json

import pytest

from bench import eta, fault, protocol, runner
from bench.__main__ import main as bench_main
from bench.common import ROOT


def test_a_fault_opens_the_relay_within_the_poll_period_and_the_debounce() -> None:
    figures = fault.run(smoke=True)
    poll_ms, debounce_ms = figures["poll_period_ms"], figures["debounce_ms"]
    far, over = figures["far_over"], figures["over_grant"]
    assert far["n"] > 0 and over["n"] > 0
    # Far beyond the port's limit: open at the first supervisor pass that sees it.
    assert far["max_ms"] <= poll_ms + 1e-6
    # A little above the grant: the rule waits its debounce, then at most two passes more.
    assert debounce_ms <= over["p50_ms"] and over["max_ms"] <= debounce_ms + 2 * poll_ms + 1e-6


def test_the_eta_benchmark_scores_both_estimates() -> None:
    figures = eta.run(smoke=True)["alone"]
    assert figures["sessions"] == 3
    assert figures["phone_mae_pct_all"] is not None
    assert figures["straight_mae_pct_all"] is not None


def test_a_benchmark_prints_its_figures_then_one_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_main(["protocol", "--smoke"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["bench"] == "protocol"
    assert summary["decode_lines_per_s"] > 1000
    assert any("decode + validate" in line for line in lines[:-1])
    assert protocol.corpus(10) == protocol.corpus(10)  # the corpus is seeded


def test_the_runner_benchmark_times_two_checkouts_on_the_same_scenarios(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PEV_BENCH_RUNNER_BEFORE", str(ROOT))  # this checkout against itself
    figures = runner.run(smoke=True)
    for case in figures["cases"].values():
        before, after = case["before"], case["after"]
        assert before["cpu_s"] > 0 and after["x_real_time"] > 1
        assert before["energy_wh"] == pytest.approx(after["energy_wh"], rel=1e-9)
