"""The layers the architecture promises, checked on every import statement in the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(package: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import in a package, lazy ones included."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(ROOT)), node.module))
    return found


def offenders(package: str, forbidden: tuple[str, ...], allow: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{file} imports {module}"
        for file, module in imports(package)
        if module.split(".")[0] in forbidden or any(module.startswith(f) for f in forbidden)
        if not any(file.startswith(a) for a in allow)
    ]


@pytest.mark.parametrize(
    ("package", "forbidden", "allow"),
    [
        # hal/ knows nothing of sessions, the protocol or the tools.
        ("hal", ("firmware", "host", "bench"), ()),
        # The station never imports the bench or the tools; `pev-charger run --sim` loads the
        # bench by name (importlib), which is the one sanctioned door.
        ("firmware", ("host", "bench"), ()),
        # The station logic knows nothing of which backend it runs on.
        ("firmware/station", ("hal.sim", "hal.pi", "aiohttp"), ()),
        # The codec stands alone: only the injectable clock comes from hal/.
        (
            "firmware/pevlink",
            ("hal.sim", "hal.pi", "aiohttp", "firmware.station", "firmware.web"),
            (),
        ),
        # The web reads the station; it does not touch the hardware.
        ("firmware/web", ("hal",), ()),
    ],
)
def test_a_layer_does_not_reach_where_it_must_not(
    package: str, forbidden: tuple[str, ...], allow: tuple[str, ...]
) -> None:
    assert offenders(package, forbidden, allow) == []


def test_the_raspberry_pi_packages_are_imported_only_by_the_pi_backend_and_lazily() -> None:
    hardware_only = ("RPi", "smbus2", "board", "busio", "lgpio", "adafruit_blinka")
    for package in ("firmware", "hal", "host", "bench"):
        for file, module in imports(package):
            if module.split(".")[0] in hardware_only:
                assert file.startswith("hal/pi/"), f"{file} imports {module}"
    # At module level the Pi backend imports none of them: a laptop can import it.
    for path in (ROOT / "hal" / "pi").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                assert not any(n.split(".")[0] in hardware_only for n in names), path
