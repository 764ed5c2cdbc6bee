"""``[budget] source = "ocpp"``: the central system's limit on connector 0 sets the budget through
the budget manager, with the manager's stale and fallback rules, against the real central system
over a real websocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from ocpp.v16 import call

from firmware.budget.manager import BudgetManager
from firmware.budget.manual import ManualBudgetFile
from firmware.config import load_config
from firmware.site_config import BudgetConfig, ConfigError
from tests.firmware.ocpp.conftest import Rig, make_rig
from tests.firmware.ocpp.csms import CentralSystem
from tests.firmware.ocpp.test_smart_charging import granted_w, profile

CONFIG = BudgetConfig(source="ocpp", fallback_w=150.0, stale_after_s=30.0, max_w=600.0)


@asynccontextmanager
async def ocpp_budget(
    tmp_path: Path, csms: CentralSystem
) -> AsyncIterator[tuple[Rig, BudgetManager]]:
    async with make_rig(tmp_path, csms) as rig:
        manager = BudgetManager(
            CONFIG,
            rig.bench.station,
            rig.bench.clock,
            static_w=600.0,
            manual_file=ManualBudgetFile(tmp_path / "budget.json"),
        )
        manager.load()
        rig.uplink.budget_source(manager.offer_limit)
        task = asyncio.create_task(manager.run())
        try:
            yield rig, manager
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_the_central_system_sets_the_budget(tmp_path: Path, csms: CentralSystem) -> None:
    async with ocpp_budget(tmp_path, csms) as (rig, manager):
        station = rig.bench.station
        # Before any word from the central system: the fallback, never the connection's maximum.
        assert station.budget_w == 150.0 and manager.view()["active"] == "fallback"
        await rig.online()
        await rig.settle(1.5)
        view = manager.view()
        assert view["stale"] and view["text"] == "no limit from the central system in force"
        await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
        await rig.bench.charging(2, "ebike-48v-13s", 40.0)

        reply = await rig.ask(
            call.SetChargingProfile(
                connector_id=0, cs_charging_profiles=profile("ChargePointMaxProfile", 450.0)
            )
        )
        assert reply.status == "Accepted"
        await rig.until(lambda: station.budget_w == 450.0, timeout=3.0)
        view = manager.view()
        assert view["kind"] == "ocpp" and view["active"] == "ocpp" and not view["stale"]
        assert view["text"] == "set by the central system (ChargePointMaxProfile)"
        await rig.settle(1.2)  # one allocator round
        assert 250.0 < granted_w(rig) <= 450.0 + 1e-6

        lower = profile("ChargePointMaxProfile", 200.0, stack=1, profile_id=2)
        await rig.ask(call.SetChargingProfile(connector_id=0, cs_charging_profiles=lower))
        await rig.until(lambda: station.budget_w == 200.0, timeout=3.0)
        await rig.settle(1.2)
        assert granted_w(rig) <= 200.0 + 1e-6

        # The operator's manual budget is a ceiling, as with a meter.
        await manager.set_manual(100.0)
        assert station.budget_w == 100.0 and manager.view()["active"] == "manual"
        await manager.set_manual(None)
        assert station.budget_w == 200.0

        # Above the configured maximum: held at max_w.
        await rig.ask(call.ClearChargingProfile())
        big = profile("TxDefaultProfile", 5000.0, profile_id=3)
        await rig.ask(call.SetChargingProfile(connector_id=0, cs_charging_profiles=big))
        await rig.until(lambda: station.budget_w == 600.0, timeout=3.0)
        assert manager.view()["text"] == "set by the central system (TxDefaultProfile)"


async def test_a_silent_central_system_falls_back(tmp_path: Path, csms: CentralSystem) -> None:
    async with ocpp_budget(tmp_path, csms) as (rig, manager):
        station = rig.bench.station
        await rig.online()
        await rig.ask(
            call.SetChargingProfile(
                connector_id=0, cs_charging_profiles=profile("ChargePointMaxProfile", 400.0)
            )
        )
        await rig.until(lambda: station.budget_w == 400.0, timeout=3.0)
        await csms.stop()
        await rig.until(lambda: rig.uplink.state == "offline")
        lost_at = rig.bench.clock.monotonic()
        await rig.until(lambda: station.budget_w == 150.0, timeout=CONFIG.stale_after_s + 5)
        assert rig.bench.clock.monotonic() - lost_at >= CONFIG.stale_after_s - 1.5
        view = manager.view()
        assert view["active"] == "fallback" and view["stale"]
        assert view["text"].startswith("central system unreachable for")
        await csms.start()
        await rig.online()
        # The profile was kept: the limit returns with the link.
        await rig.until(lambda: station.budget_w == 400.0, timeout=5.0)
        assert manager.view()["active"] == "ocpp"


def test_source_ocpp_needs_the_uplink(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text('[budget]\nsource = "ocpp"\nfallback_w = 100\n')
    with pytest.raises(ConfigError, match=r"needs \[ocpp\] enabled"):
        load_config(path)
