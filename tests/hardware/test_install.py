"""hardware/install.sh, run into a temporary system root (``--root``), as far as a machine without a
Pi allows.

The script writes its files, users, groups and units under the root; the steps that act on a
running system (apt-get, the venv and pip, udevadm, systemctl daemon-reload) are printed there, not
run. What only a real Pi confirms is listed in hardware/README.md ("What the install's test does not
show"). This machine's own /etc, /boot and users are never touched: the test checks that too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from firmware.cli import main as pev_charger

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hardware" / "install.sh"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="useradd --root needs root"),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("useradd", "groupadd", "usermod", "systemctl", "git")),
        reason="needs the passwd tools, systemctl and git",
    ),
]

CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=0a1b2c3d-02 rootfstype=ext4 rootwait\n"
CONFIG_TXT = "# Raspberry Pi OS\ndtparam=audio=on\ncamera_auto_detect=1\n\n[all]\n"


def make_root(tmp_path: Path, model: str) -> Path:
    """A fresh Raspberry Pi OS root as the image leaves it, with only what the script reads."""
    root = tmp_path / "root"
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n"
    )
    (etc / "group").write_text("root:x:0:\ndialout:x:20:pi\npi:x:1000:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\npi:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\ndialout:*::pi\npi:!::\n")
    for name in ("passwd", "group", "shadow", "gshadow"):
        (etc / name).chmod(0o644 if name in ("passwd", "group") else 0o640)
    (etc / "os-release").write_text("ID=debian\nVERSION_CODENAME=trixie\n")
    boot = root / "boot" / "firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(CONFIG_TXT)
    (boot / "cmdline.txt").write_text(CMDLINE)
    tree = root / "proc" / "device-tree"
    tree.mkdir(parents=True)
    (tree / "model").write_bytes(model.encode() + b"\0")
    return root


def install(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file and link under ``root`` (the checkout aside): its mode and content."""
    out: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith("opt/pev-charger/src/"):
            continue
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            out[rel] = (info.st_mode, os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            out[rel] = (info.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def host_state() -> dict[str, str]:
    paths = [Path("/etc/passwd"), Path("/etc/group"), Path("/etc/shadow")]
    state = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.exists()}
    for path in (
        "/etc/pev-charger",
        "/etc/udev/rules.d/90-pev-charger-uarts.rules",
        "/etc/systemd/system/pev-charger.service",
        "/opt/pev-charger",
        "/boot/firmware/config.txt",
        "/boot/config.txt",
    ):
        state[path] = str(Path(path).exists())
    return state


def members(root: Path, group: str) -> list[str]:
    for line in (root / "etc" / "group").read_text().splitlines():
        name, _, _, users = line.split(":")
        if name == group:
            return users.split(",") if users else []
    raise AssertionError(f"no group {group}")


def test_a_pi_5_install_writes_everything_and_a_second_run_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = host_state()
    root = make_root(tmp_path, "Raspberry Pi 5 Model B Rev 1.0")
    out = install(root)
    assert "Raspberry Pi 5" in out and "Debian trixie" in out

    # packages, venv and pip are for the real system: printed, not run
    assert "skipped under --root: apt-get update" in out
    assert "python3-dev build-essential swig" in out
    assert "skipped under --root: python3 -m venv /opt/pev-charger" in out
    pip = "/opt/pev-charger/bin/pip install --quiet --upgrade /opt/pev-charger/src[pi]"
    assert f"skipped under --root: {pip}" in out

    # the user and its groups
    passwd = (root / "etc" / "passwd").read_text()
    assert "pev:x:" in passwd and ":/var/lib/pev-charger:/usr/sbin/nologin" in passwd
    for group in ("gpio", "i2c", "dialout"):
        assert "pev" in members(root, group)
    assert "pi" in members(root, "dialout")  # existing members stay

    # the code, from this checkout
    src = root / "opt" / "pev-charger" / "src"
    head = ["git", "-c", "safe.directory=*", "rev-parse", "HEAD"]
    assert subprocess.run(head, cwd=src, capture_output=True, text=True).stdout == (
        subprocess.run(head, cwd=ROOT, capture_output=True, text=True).stdout
    )
    assert (src / "pyproject.toml").is_file()

    # /etc/pev-charger: the example, readable by pev, and it passes the offline check
    station = root / "etc" / "pev-charger" / "station.toml"
    assert station.read_text() == (ROOT / "hardware" / "station.example.toml").read_text()
    groups = (root / "etc" / "group").read_text().splitlines()
    pev_gid = int(next(g for g in groups if g.startswith("pev:")).split(":")[2])
    assert stat.S_IMODE(station.stat().st_mode) == 0o640 and station.stat().st_gid == pev_gid
    assert pev_charger(["check-config", "--offline", str(station)]) == 0
    environment = root / "etc" / "pev-charger" / "environment"
    assert "PEV_OPERATOR_TOKEN=" in environment.read_text()
    assert stat.S_IMODE(environment.stat().st_mode) == 0o640

    # config.txt: the image's lines kept, the station's block for a Pi 5 appended
    config_txt = (root / "boot" / "firmware" / "config.txt").read_text()
    assert config_txt.startswith(CONFIG_TXT)
    block = config_txt[len(CONFIG_TXT) :].splitlines()
    assert block[1:-1] == [
        "[all]",
        "dtparam=i2c_arm=on",
        "dtparam=i2c_arm_baudrate=400000",
        "dtoverlay=uart0-pi5",
        "dtoverlay=uart1-pi5",
        "dtoverlay=uart2-pi5",
        "dtoverlay=uart3-pi5",
    ]
    assert (root / "boot" / "firmware" / "config.txt.pev-charger.orig").read_text() == CONFIG_TXT

    # the serial console is gone from the kernel command line and its getty masked
    cmdline = (root / "boot" / "firmware" / "cmdline.txt").read_text()
    assert "console=serial0" not in cmdline and "console=tty1" in cmdline and "rootwait" in cmdline
    system = root / "etc" / "systemd" / "system"
    for unit in ("serial-getty@serial0.service", "serial-getty@ttyAMA0.service"):
        assert os.readlink(system / unit) == "/dev/null"
    assert not (system / "hciuart.service").exists()  # a Pi 5 keeps Bluetooth

    # udev: the pins' names for a Pi 5's kernel names
    rules = (root / "etc" / "udev" / "rules.d" / "90-pev-charger-uarts.rules").read_text()
    assert 'KERNEL=="ttyAMA2", SYMLINK+="pev-uart-4-5"' in rules
    assert 'KERNEL=="ttyAMA1", SYMLINK+="pev-uart-0-1"' in rules

    # the unit, installed and enabled
    unit = system / "pev-charger.service"
    assert unit.read_text() == (ROOT / "hardware" / "pev-charger.service").read_text()
    wants = system / "multi-user.target.wants" / "pev-charger.service"
    assert os.readlink(wants) == "/etc/systemd/system/pev-charger.service"
    assert "reboot" in out

    # a second run: every step already done, nothing written
    first = snapshot(root)
    again = install(root)
    assert snapshot(root) == first
    assert "  + " not in again, again
    assert "= user pev exists" in again and "has the station's lines" in again
    assert "(kept as it is)" in again

    assert host_state() == before


def test_a_pi_4_gets_its_overlays_bluetooth_off_the_pl011_and_its_names(tmp_path: Path) -> None:
    root = make_root(tmp_path, "Raspberry Pi 4 Model B Rev 1.5")
    install(root)
    config_txt = (root / "boot" / "firmware" / "config.txt").read_text()
    for line in (
        "dtparam=i2c_arm_baudrate=400000",
        "enable_uart=1",
        "dtoverlay=disable-bt",
        "dtoverlay=uart2",
        "dtoverlay=uart3",
        "dtoverlay=uart4",
    ):
        assert f"\n{line}\n" in config_txt
    assert "-pi5" not in config_txt
    system = root / "etc" / "systemd" / "system"
    assert os.readlink(system / "hciuart.service") == "/dev/null"
    rules = (root / "etc" / "udev" / "rules.d" / "90-pev-charger-uarts.rules").read_text()
    assert 'KERNEL=="ttyAMA3", SYMLINK+="pev-uart-4-5"' in rules

    # the SD card moved to a Pi 5: the block is replaced, not doubled
    install(root, "--pi", "5")
    config_txt = (root / "boot" / "firmware" / "config.txt").read_text()
    assert config_txt.count("# pev-charger: begin") == 1
    assert "dtoverlay=uart2-pi5" in config_txt and "dtoverlay=uart2\n" not in config_txt


def test_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = make_root(tmp_path, "Raspberry Pi 5 Model B Rev 1.0")
    before = snapshot(root)
    out = install(root, "--dry-run")
    assert snapshot(root) == before
    assert not (root / "opt").exists()
    assert "~ would run: useradd" in out and "~ would set in /boot/firmware/config.txt" in out


def test_an_unknown_board_is_refused_with_the_way_out(tmp_path: Path) -> None:
    root = make_root(tmp_path, "Generic x86 PC")
    done = subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "pass --pi 4 or --pi 5" in done.stderr
    assert not (root / "opt").exists()
