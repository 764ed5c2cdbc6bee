"""Boot, heartbeat, statuses and credentials against a real central system on localhost."""

from __future__ import annotations

from pathlib import Path

from firmware.ocpp.status import connector_status
from firmware.station.port import PortState
from host.vehicle.faults import FaultKind
from tests.firmware.ocpp.conftest import CP_ID, Rig, make_rig
from tests.firmware.ocpp.csms import CentralSystem


async def test_a_cold_boot_sends_boot_first_then_every_connector_status(rig: Rig) -> None:
    await rig.online()
    await rig.until(lambda: len(rig.csms.state.of("StatusNotification")) >= 3)
    actions = rig.csms.state.actions()
    assert actions[0] == "BootNotification"
    boot = rig.csms.state.of("BootNotification")[0]
    assert boot["charge_point_vendor"] == "pev-charger"
    statuses = {s["connector_id"]: s for s in rig.csms.state.of("StatusNotification")}
    assert set(statuses) == {0, 1, 2}
    assert all(
        s["status"] == "Available" and s["error_code"] == "NoError" for s in statuses.values()
    )
    assert all(s["timestamp"].endswith("Z") for s in statuses.values())


async def test_the_heartbeat_follows_the_interval_the_central_system_gives(
    tmp_path: Path, csms: CentralSystem
) -> None:
    csms.state.boot_interval = 30
    async with make_rig(tmp_path, csms) as rig:
        await rig.online()
        assert rig.uplink.settings.heartbeat_s == 30
        await rig.bench.run_for(95.0, step=0.1)
        assert 3 <= len(rig.csms.state.of("Heartbeat")) <= 4


async def test_a_rejected_boot_sends_nothing_else_and_tries_again_after_the_interval(
    tmp_path: Path, csms: CentralSystem
) -> None:
    csms.state.boot_status = "Rejected"
    csms.state.boot_interval = 20
    async with make_rig(tmp_path, csms) as rig:
        await rig.until(lambda: rig.uplink.state == "rejected")
        await rig.bench.run_for(15.0, step=0.05)
        assert rig.csms.state.actions() == ["BootNotification"]
        csms.state.boot_status = "Accepted"
        await rig.until(lambda: rig.uplink.state == "online", timeout=10.0)
        assert rig.csms.state.actions()[:2] == ["BootNotification", "BootNotification"]
        await rig.until(lambda: len(rig.csms.state.of("StatusNotification")) >= 3)


async def test_a_pending_boot_waits_and_asks_again(tmp_path: Path, csms: CentralSystem) -> None:
    csms.state.boot_status = "Pending"
    csms.state.boot_interval = 10
    async with make_rig(tmp_path, csms) as rig:
        await rig.until(lambda: rig.uplink.state == "pending")
        csms.state.boot_status = "Accepted"
        await rig.until(lambda: rig.uplink.state == "online", timeout=15.0)
        assert rig.csms.state.actions()[:2] == ["BootNotification", "BootNotification"]


async def test_a_wrong_password_is_refused_and_reported(
    tmp_path: Path, csms: CentralSystem
) -> None:
    async with make_rig(tmp_path, csms, password="not-the-right-password") as rig:
        await rig.until(lambda: rig.uplink.state == "unauthorized")
        assert rig.csms.refused_logins >= 1
        assert rig.csms.state.messages == []
        view = rig.uplink.link_view()
        assert view["state"] == "unauthorized" and "password" in (view["error"] or "")
        # It keeps trying, with growing pauses, and never gets in.
        await rig.bench.run_for(30.0, step=0.1)
        assert CP_ID not in rig.csms.connected and rig.csms.state.messages == []


async def test_a_fault_is_reported_as_faulted_with_its_error_code(rig: Rig) -> None:
    await rig.online()
    await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
    rig.bench.bay.inject(1, FaultKind.OVERDRAW)  # the vehicle draws more than it was granted
    await rig.until(lambda: any(s["status"] == "Faulted" for s in rig.statuses(1)))
    faulted = [s for s in rig.statuses(1) if s["status"] == "Faulted"][-1]
    assert faulted["error_code"] == "OverCurrentFailure"
    assert faulted["vendor_error_code"] == "overcurrent"
    await rig.until(lambda: len(rig.csms.state.of("StopTransaction")) == 1)
    assert rig.csms.state.of("StopTransaction")[0]["reason"] == "EmergencyStop"


def test_the_status_table() -> None:
    def view(state: str, **kw: object) -> dict[str, object]:
        return {"state": state, "fault": None, "vehicle": None, "session": None, **kw}

    assert connector_status(view("empty")).status == "Available"
    assert connector_status(view("ready")).status == "Preparing"
    assert connector_status(view("waiting")).status == "SuspendedEVSE"
    cold = {"temperature_c": -5.0, "t_min_c": 0.0, "t_max_c": 45.0}
    assert connector_status(view("waiting", vehicle=cold)).status == "SuspendedEV"
    assert connector_status(view("charging")).status == "Charging"
    assert connector_status(view("stopping")).status == "Finishing"
    assert connector_status(view("done")).status == "Finishing"
    assert connector_status(view("empty"), available=False).status == "Unavailable"
    assert connector_status(view("charging"), available=False).status == "Charging"
    fault = {"code": "silent", "text": "The vehicle stopped answering"}
    status = connector_status(view(PortState.FAULT.value, fault=fault))
    assert (status.status, status.error_code) == ("Faulted", "EVCommunicationError")
