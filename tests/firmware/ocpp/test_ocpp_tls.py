"""Security profile 2: TLS with HTTP Basic, the central system proving itself with a certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.firmware.ocpp.conftest import CP_ID, PASSWORD, make_rig
from tests.firmware.ocpp.csms import CentralSystem
from tests.support import free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "csms.pem", tmp_path / "csms.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_wss_with_the_central_systems_certificate_and_a_password(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    csms = CentralSystem(free_port(), (CP_ID, PASSWORD), tls)
    await csms.start()
    try:
        # Without the certificate's authority the station does not trust it, and says why.
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        async with make_rig(tmp_path / "a", csms) as rig:
            await rig.until(lambda: rig.uplink.error is not None)
            assert "certificate" in (rig.uplink.error or "").lower()
            assert rig.csms.state.messages == []
        async with make_rig(tmp_path / "b", csms, ca_file=str(cert)) as rig:
            await rig.online()
            assert rig.csms.state.actions()[0] == "BootNotification"
            assert rig.uplink.config.url.startswith("wss://")
    finally:
        await csms.stop()
