"""docs/pev-link.md's message reference and the codec's message table say the same thing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from firmware.pevlink.codec import describe_messages

SPEC = (Path(__file__).resolve().parents[3] / "docs" / "pev-link.md").read_text(encoding="utf-8")


def section(kind: str, name: str) -> str:
    match = re.search(rf"^#### `{kind}` `{name}` .*?$(.*?)(?=^#{{2,4}} )", SPEC, re.M | re.S)
    assert match, f"docs/pev-link.md has no section for {kind} {name}"
    return match.group(1)


def rows(text: str) -> dict[str, list[str]]:
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            out[cells[0].strip("`")] = cells
    return out


@pytest.mark.parametrize("message", describe_messages(), ids=lambda m: f"{m['kind']}-{m['name']}")
def test_every_field_of_every_message_is_in_the_spec_as_the_codec_has_it(
    message: dict[str, object],
) -> None:
    table = rows(section(str(message["kind"]), str(message["name"])))
    fields = message["fields"]
    assert isinstance(fields, list)
    assert sorted(table) == sorted(f["key"] for f in fields)
    for f in fields:
        _, type_, unit, values, required, _ = table[f["key"]]
        assert type_ == f["type"], f["key"]
        assert unit == f["unit"], f["key"]
        assert required == ("yes" if f["required"] else "no"), f["key"]
        for choice in f["choices"]:
            assert f"`{choice}`" in values, (f["key"], choice)


def test_the_requirement_lists_are_those_the_conformance_kit_checks() -> None:
    from host.conformance.requirements import ALL, markdown

    begin, end = "<!-- requirements:begin -->\n", "<!-- requirements:end -->"
    listed = SPEC.split(begin, 1)[1].split(end, 1)[0]
    assert listed == markdown(), "regenerate with: python -m host.conformance.requirements"
    ids = [r.id for r in ALL]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"(ST|VH)-(PHY|LINK|BOOT|APP|SAFE)-\d\d", rid) for rid in ids)
