"""``--script FILE``: send a prepared sequence and check the answers.

One step a line; ``#`` starts a comment::

    send NAME key=value ...         send a message (the same syntax as typed commands)
    expect NAME [key=value ...] [within SECONDS]
                                    wait for a received NAME whose fields have these values
    wait SECONDS                    let time pass (lines keep being shown)
    timeout SECONDS                 the default for the expects that follow (5 s at the start)
    raw TEXT                        send TEXT as is, CRLF added

``expect`` skips other messages (heartbeats, state notices, telemetry) and fails — the script
stops and ``pev-console`` exits with 1 — when time runs out, when the peer answers with NAK (unless
NAK is what is expected), or when a *reply* of that name arrives with other values: that is an
unexpected answer. ``q``, ``r`` or ``n`` before the name restricts it to that kind. Values are
compared as numbers where the field is numeric (``v=42`` matches ``v=42.0``), as text otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from firmware.pevlink.codec import Decoded, specs
from firmware.pevlink.errors import ProtocolError
from firmware.pevlink.messages import Message, Nak
from firmware.pevlink.vocabulary import FieldType, Spec
from hal.clock import wait_for
from host.console.commands import (
    CommandError,
    MessageCommand,
    parse_message_words,
    raw_bytes,
    spec_of,
    split_words,
)
from host.console.render import format_message
from host.console.session import Console

DEFAULT_TIMEOUT_S = 5.0


class ScriptError(ValueError):
    """A script that cannot run; the text names the line."""


@dataclass(frozen=True, slots=True)
class Step:
    line_no: int
    text: str
    action: str
    """send, expect, wait, timeout or raw."""
    command: MessageCommand | None = None
    data: bytes = b""
    seconds: float | None = None


@dataclass
class ScriptResult:
    ok: bool
    steps_done: int
    failure: str | None = None
    failed_step: Step | None = None
    matched: list[Decoded] = field(default_factory=list)

    def describe(self) -> str:
        if self.ok:
            return f"script passed: {self.steps_done} steps"
        assert self.failed_step is not None
        return f"line {self.failed_step.line_no}: {self.failed_step.text}: {self.failure}"


def _seconds(word: str, line_no: int) -> float:
    try:
        value = float(word)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ScriptError(f"line {line_no}: {word!r} is not a number of seconds")
    return value


def parse_script(text: str) -> list[Step]:
    steps: list[Step] = []
    for line_no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        verb, _, rest = stripped.partition(" ")
        verb = verb.lower()
        try:
            if verb == "raw":
                steps.append(Step(line_no, stripped, "raw", data=raw_bytes(rest.strip())))
                continue
            words = split_words(rest)
            if verb in ("wait", "timeout"):
                if len(words) != 1:
                    raise ScriptError(f"line {line_no}: use '{verb} SECONDS'")
                steps.append(Step(line_no, stripped, verb, seconds=_seconds(words[0], line_no)))
            elif verb == "send":
                steps.append(Step(line_no, stripped, "send", command=parse_message_words(words)))
            elif verb == "expect":
                seconds: float | None = None
                if len(words) >= 2 and words[-2].lower() == "within":
                    seconds = _seconds(words[-1], line_no)
                    words = words[:-2]
                command = parse_message_words(words)
                if command.seq is not None:
                    raise ScriptError(f"line {line_no}: expect does not take a sequence number")
                steps.append(Step(line_no, stripped, "expect", command=command, seconds=seconds))
            else:
                raise ScriptError(
                    f"line {line_no}: unknown step {verb!r}; use send, expect, wait, timeout, raw"
                )
        except CommandError as exc:
            raise ScriptError(f"line {line_no}: {exc}") from None
    return steps


def _same(spec: Spec, wanted: str, value: object) -> bool:
    try:
        if spec.type is FieldType.HEX:
            return int(wanted.removeprefix("0x").removeprefix("0X"), 16) == value
        if spec.type in (FieldType.INT, FieldType.DEC):
            return isinstance(value, int | float) and math.isclose(
                float(wanted), float(value), abs_tol=1e-9
            )
        if spec.type is FieldType.INTS:
            return tuple(int(v) for v in wanted.split(",")) == value
    except ValueError:
        return False
    return wanted == value


def mismatches(command: MessageCommand, message: Message) -> list[str]:
    """The expected fields that ``message`` does not have, as ``key=got (wanted)`` texts."""
    found = {spec.key: (spec, getattr(message, attr)) for attr, spec, _ in specs(type(message))}
    out: list[str] = []
    for key, wanted in command.fields:
        spec, value = found.get(key, (spec_of(command.name, key), None))
        if spec is None or value is None or not _same(spec, wanted, value):
            out.append(f"{key}={'(absent)' if value is None else value} (wanted {wanted})")
    return out


async def _expect(console: Console, step: Step, timeout: float) -> Decoded:
    command = step.command
    assert command is not None
    deadline = console.clock.monotonic() + timeout
    while True:
        if not console.inbox.empty():
            decoded = console.inbox.get_nowait()
        else:
            remaining = deadline - console.clock.monotonic()
            if remaining <= 0:
                raise TimeoutError
            decoded = await wait_for(console.clock, console.inbox.get(), remaining)
        message = decoded.message
        name_ok = command.name == message.NAME
        kind_ok = command.kind is None or decoded.kind == command.kind
        if name_ok and kind_ok:
            wrong = mismatches(command, message)
            if not wrong:
                return decoded
            if decoded.kind == "R":
                got = format_message(decoded)
                raise _Unexpected(f"unexpected answer {got}: {', '.join(wrong)}")
            continue
        if isinstance(message, Nak) and command.name != "NAK":
            raise _Unexpected(f"the peer refused: {format_message(decoded)}")


class _Unexpected(Exception):
    pass


async def run_script(
    console: Console, steps: list[Step], *, default_timeout: float = DEFAULT_TIMEOUT_S
) -> ScriptResult:
    """Runs ``steps`` on a running console; stops at the first failure."""
    result = ScriptResult(ok=True, steps_done=0)
    timeout = default_timeout
    for step in steps:
        try:
            if console.failure is not None:
                raise _Unexpected(f"the port failed: {console.failure}")
            if step.action == "send":
                assert step.command is not None
                await console.send_command(step.command)
            elif step.action == "raw":
                await console.send_raw(step.data)
            elif step.action == "wait":
                assert step.seconds is not None
                await console.clock.sleep(step.seconds)
            elif step.action == "timeout":
                assert step.seconds is not None
                timeout = step.seconds
            else:
                within = step.seconds if step.seconds is not None else timeout
                try:
                    result.matched.append(await _expect(console, step, within))
                except TimeoutError:
                    raise _Unexpected(f"nothing matching came within {within:g} s") from None
        except (_Unexpected, CommandError, ProtocolError, OSError) as exc:
            result.ok = False
            result.failure = str(exc)
            result.failed_step = step
            return result
        result.steps_done += 1
    return result
