"""What a run found, by requirement id: the text report, JUnit XML and JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from host.conformance.requirements import DOCUMENT, Requirement, for_role


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNTESTABLE = "not testable here"


@dataclass
class Outcome:
    requirement: Requirement
    verdict: Verdict
    detail: str = ""
    lines: list[str] = field(default_factory=list)


@dataclass
class _Note:
    verdict: Verdict
    detail: str
    lines: list[str]


class Results:
    """Findings as the checks make them; one verdict per requirement at the end.

    A requirement fails if any check of it failed, passes if a check passed and none failed, and
    is otherwise not testable here (with the reason the checks gave, or why the kit cannot see it).
    """

    def __init__(self, role: str) -> None:
        self.role = role
        self.requirements = for_role(role)
        self._notes: dict[str, list[_Note]] = {}
        self.seconds = 0.0
        self.device = ""

    def _add(self, rid: str, note: _Note) -> None:
        if rid not in {r.id for r in self.requirements}:
            raise KeyError(f"{rid} is not a {self.role} requirement")
        self._notes.setdefault(rid, []).append(note)

    def passed(self, rid: str, detail: str = "") -> None:
        self._add(rid, _Note(Verdict.PASS, detail, []))

    def failed(self, rid: str, detail: str, lines: list[str] | None = None) -> None:
        self._add(rid, _Note(Verdict.FAIL, detail, lines or []))

    def untestable(self, rid: str, why: str) -> None:
        self._add(rid, _Note(Verdict.UNTESTABLE, why, []))

    def check(self, rid: str, ok: bool, detail: str, lines: list[str] | None = None) -> bool:
        if ok:
            self.passed(rid)
        else:
            self.failed(rid, detail, lines)
        return ok

    def has(self, rid: str) -> bool:
        return rid in self._notes

    def outcomes(self) -> list[Outcome]:
        out = []
        for req in self.requirements:
            notes = self._notes.get(req.id, [])
            fails = [n for n in notes if n.verdict is Verdict.FAIL]
            if fails:
                first = fails[0]
                detail = first.detail + (f" (and {len(fails) - 1} more)" if len(fails) > 1 else "")
                out.append(Outcome(req, Verdict.FAIL, detail, first.lines))
            elif any(n.verdict is Verdict.PASS for n in notes):
                out.append(Outcome(req, Verdict.PASS))
            elif notes:
                out.append(Outcome(req, Verdict.UNTESTABLE, notes[0].detail))
            elif not req.kit:
                out.append(
                    Outcome(
                        req,
                        Verdict.UNTESTABLE,
                        "not visible on the serial line (physical, electrical or internal)",
                    )
                )
            else:
                out.append(Outcome(req, Verdict.UNTESTABLE, "not reached in this run"))
        return out

    def failed_ids(self) -> list[str]:
        return [o.requirement.id for o in self.outcomes() if o.verdict is Verdict.FAIL]

    def counts(self) -> dict[str, int]:
        counts = {v.value: 0 for v in Verdict}
        for o in self.outcomes():
            counts[o.verdict.value] += 1
        return counts


def text_report(results: Results) -> str:
    lines = [f"{DOCUMENT} conformance: {results.role} {results.device}".rstrip(), ""]
    for o in results.outcomes():
        lines.append(f"{o.requirement.id:<11} {o.verdict.value:<18} {o.requirement.text}")
        if o.verdict is not Verdict.PASS and o.detail:
            lines.append(f"{'':11} {'':18} -> {o.detail}")
        for line in o.lines:
            lines.append(f"{'':14}{line}")
    c = results.counts()
    lines.append("")
    lines.append(
        f"{len(results.requirements)} requirements: {c['pass']} pass, {c['fail']} fail, "
        f"{c['not testable here']} not testable here ({results.seconds:.1f} s)"
    )
    return "\n".join(lines) + "\n"


def to_json(results: Results) -> dict[str, Any]:
    return {
        "protocol": DOCUMENT,
        "role": results.role,
        "device": results.device,
        "seconds": round(results.seconds, 3),
        "counts": results.counts(),
        "requirements": [
            {
                "id": o.requirement.id,
                "section": o.requirement.section,
                "text": o.requirement.text,
                "verdict": o.verdict.value,
                "detail": o.detail,
                "lines": o.lines,
            }
            for o in results.outcomes()
        ],
    }


def dumps_json(results: Results) -> str:
    return json.dumps(to_json(results), indent=1, ensure_ascii=False) + "\n"


def junit_xml(results: Results) -> str:
    """One test case per requirement: failures carry the lines exchanged, the rest are skipped."""
    c = results.counts()
    suite = ET.Element(
        "testsuite",
        name=f"pev-conformance {results.role}",
        tests=str(len(results.requirements)),
        failures=str(c["fail"]),
        skipped=str(c["not testable here"]),
        errors="0",
        time=f"{results.seconds:.3f}",
    )
    for o in results.outcomes():
        case = ET.SubElement(
            suite, "testcase", classname=f"pevlink.{results.role}", name=o.requirement.id
        )
        if o.verdict is Verdict.FAIL:
            failure = ET.SubElement(case, "failure", message=o.detail)
            failure.text = "\n".join([o.requirement.text, *o.lines])
        elif o.verdict is Verdict.UNTESTABLE:
            ET.SubElement(case, "skipped", message=o.detail)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
