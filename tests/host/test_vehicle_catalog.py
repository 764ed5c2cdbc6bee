"""The vehicle catalog: every class loads whole, is self-consistent, and can announce itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.pevlink.codec import decode, encode
from firmware.pevlink.vocabulary import CHEMISTRIES, VEHICLE_TYPES
from hal.config import PortConfig, bench_config
from host.vehicle.agent import battery_message
from host.vehicle.battery import CELL_LIMITS
from host.vehicle.catalog import CATALOG_PATH, find, load_catalog
from host.vehicle.model import SimVehicle
from host.vehicle.spec import VehicleSpec

CATALOG = load_catalog()


def ids(spec: VehicleSpec) -> str:
    return spec.id


def test_the_catalog_offers_at_least_eight_vehicle_classes_of_both_chemistries() -> None:
    assert len(CATALOG) >= 8
    assert len({spec.id for spec in CATALOG}) == len(CATALOG), "ids must be unique"
    chemistries = {spec.chemistry for spec in CATALOG}
    assert {"NMC", "LFP"} <= chemistries
    assert {"ebike", "scooter", "onewheel", "eskate", "eunicycle"} <= {
        spec.vehicle_type for spec in CATALOG
    }


@pytest.mark.parametrize("spec", CATALOG, ids=ids)
def test_each_vehicle_has_a_complete_and_consistent_battery_profile(spec: VehicleSpec) -> None:
    assert spec.name and spec.maker
    assert spec.vehicle_type in VEHICLE_TYPES
    assert spec.chemistry in CHEMISTRIES and spec.chemistry in CELL_LIMITS
    assert spec.cells_series >= 1 and spec.cells_parallel >= 1
    # Voltages follow from the cells: full = series cells × the chemistry's charge voltage.
    cv_cell, _, empty_cell = CELL_LIMITS[spec.chemistry]
    assert spec.v_max == pytest.approx(spec.cells_series * cv_cell)
    assert spec.v_min == pytest.approx(spec.cells_series * empty_cell)
    assert spec.v_min < spec.v_nom < spec.v_max
    # A rated capacity, where given, agrees with the cells within 10 %.
    assert spec.capacity_wh > 0
    assert spec.capacity_wh == pytest.approx(spec.capacity_ah * spec.v_nom, rel=0.10)
    # Currents: a usable minimum below the maximum, and a cut-off that ends the charge.
    assert 0 < spec.i_min < spec.i_max
    assert 0 < spec.cutoff_a < spec.i_max
    assert spec.capacity_ah / 50 <= spec.cutoff_a <= spec.capacity_ah / 10
    # A charging window that includes room temperature and stays within Li-ion practice.
    assert -20 <= spec.t_min_c < 25 < spec.t_max_c <= 60
    assert spec.cell_resistance_ohm > 0
    assert spec.heat_capacity_j_per_k > 0 and spec.conductance_w_per_k > 0
    # Every figure is traceable to where it was published.
    assert spec.sources and all(len(source) > 20 for source in spec.sources)


@pytest.mark.parametrize("spec", CATALOG, ids=ids)
def test_each_vehicle_can_declare_its_battery_on_the_wire(spec: VehicleSpec) -> None:
    """The BATT request a vehicle sends is valid PEV Link and survives the codec unchanged."""
    battery = battery_message(SimVehicle(spec, soc_pct=50.0))
    assert decode(encode(battery, 7)).message == battery


@pytest.mark.parametrize(
    ("vehicle_id", "v_max", "capacity_wh", "i_max", "window"),
    [
        # Bosch PowerPack 500: 36 V (10S), 500 Wh, 4 A charger, 0-40 °C.
        ("ebike-36v-500wh", 42.0, 500, 4.0, (0, 40)),
        # 48 V e-bike 13S: 54.6 V full; 52 V 14S: 58.8 V; 48 V LiFePO4 16S: 58.4 V.
        ("ebike-48v-13s", 54.6, None, None, None),
        ("ebike-52v-14s", 58.8, None, None, None),
        ("ebike-48v-lfp", 58.4, None, None, None),
        # Xiaomi M365: 42 V full, 280 Wh, 1.7 A charger.
        ("scooter-xiaomi-m365", 42.0, 280, 1.7, None),
        # Onewheel: 15S, 63 V; XR about 324 Wh; up to 3.5 A.
        ("onewheel-xr", 63.0, 324, 3.5, None),
        # Boosted: 12S LiFePO4, 99 Wh, 2 A.
        ("eskate-lfp-99wh", 43.8, 99, 2.0, None),
        # InMotion V11: 84 V, 1500 Wh, 2.5 A; V12 class: 100.8 V, 1750 Wh (2.5 A as the V11);
        # V13 class: 126 V, about 3000 Wh, 2.3 A.
        ("eunicycle-84v", 84.0, 1500, 2.5, None),
        ("eunicycle-100v", 100.8, 1750, 2.5, None),
        ("eunicycle-126v", 126.0, 3024, 2.3, None),
    ],
)
def test_catalog_figures_match_the_published_ones(
    vehicle_id: str,
    v_max: float,
    capacity_wh: float | None,
    i_max: float | None,
    window: tuple[float, float] | None,
) -> None:
    spec = find(vehicle_id)
    assert spec.v_max == pytest.approx(v_max, abs=0.05)
    if capacity_wh is not None:
        assert spec.capacity_wh == pytest.approx(capacity_wh)
    if i_max is not None:
        assert spec.i_max == pytest.approx(i_max)
    if window is not None:
        assert (spec.t_min_c, spec.t_max_c) == window


def test_every_vehicle_fits_a_bench_port_and_only_the_unicycles_above_85_v_need_the_hv_one() -> (
    None
):
    """The ordinary ports measure to 84 V (INA228) or 25.5 V (INA219); the 100.8 V and 126 V
    packs are beyond all of them and charge only on a high-voltage port, as their entries say."""

    def misfits(ports: tuple[PortConfig, ...]) -> list[str]:
        return [
            spec.id
            for spec in CATALOG
            if not any(
                p.min_voltage_v <= spec.v_min and spec.v_max <= p.max_voltage_v for p in ports
            )
        ]

    assert misfits(bench_config(4).ports) == ["eunicycle-100v", "eunicycle-126v"]
    assert misfits(bench_config(4, hv_ports=1).ports) == []
    for vehicle_id in ("eunicycle-100v", "eunicycle-126v"):
        assert "E210" in find(vehicle_id).notes and "high-voltage port" in find(vehicle_id).notes


def test_the_public_view_gives_what_the_bench_page_shows() -> None:
    view = find("ebike-48v-lfp").public_view()
    assert view["cells"] == "16S1P"
    assert view["chemistry"] == "LFP"
    assert view["v_max"] == pytest.approx(58.4)
    assert view["capacity_wh"] == 768
    assert view["temperature_window_c"] == [0.0, 45.0]
    assert view["sources"]


def test_an_unknown_vehicle_id_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        find("no-such-vehicle")


def test_an_entry_with_an_unknown_chemistry_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    text = CATALOG_PATH.read_text(encoding="utf-8")
    path.write_text(text.replace('chemistry = "LFP"', 'chemistry = "LiPo"', 1), encoding="utf-8")
    with pytest.raises(ValueError, match="ebike-48v-lfp: unknown chemistry LiPo"):
        load_catalog(path)
