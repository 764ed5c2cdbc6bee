"""Typed commands: ``[q|r|n] NAME [@SEQ] key=value ...``, ``raw TEXT``, and their completion.

A message name alone is enough: the kind comes from the message table (``TEL`` is a notice,
``HELLO`` a request). Where a name is both a request and a reply (``GRANT``, ``POWER``, ``STOP``,
...) the console sends the reply when the peer has a request of that name waiting for an answer,
and the request otherwise; a ``q``, ``r`` or ``n`` prefix says which. A reply takes the sequence
number of the request it answers, or ``@NN`` (two hex digits) to choose one. Values with spaces
are quoted (``text="Battery too warm"``). The message is built and checked by the shared codec
before anything is sent, so a typo is reported (``E201 missing field: ver is required``) instead
of being put on the wire; ``raw`` sends text exactly as typed, for testing a peer's error handling.
"""

from __future__ import annotations

import codecs
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from firmware.pevlink.codec import from_frame, specs
from firmware.pevlink.framing import Frame
from firmware.pevlink.messages import MESSAGE_TYPES, REGISTRY, Message
from firmware.pevlink.vocabulary import Spec

KIND_PREFIXES = {"q": "Q", "r": "R", "n": "N"}
CONSOLE_WORDS = ("raw", "help", "quit")
NAMES: tuple[str, ...] = tuple(sorted({cls.NAME for cls in MESSAGE_TYPES}))


class CommandError(ValueError):
    """A command that cannot be sent; the text says why."""


@dataclass(frozen=True, slots=True)
class MessageCommand:
    name: str
    kind: str | None
    """Q, R or N when given with a prefix; None to infer it."""
    fields: tuple[tuple[str, str], ...] = ()
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class RawCommand:
    data: bytes


@dataclass(frozen=True, slots=True)
class ConsoleCommand:
    word: str
    """``help`` or ``quit``."""


Command = MessageCommand | RawCommand | ConsoleCommand


def kinds_of(name: str) -> list[str]:
    """The kinds a message name exists in, requests first (``["Q", "R"]`` for GRANT)."""
    return [kind for kind in ("Q", "R", "N") if (kind, name) in REGISTRY]


def keys_of(name: str, kind: str | None = None) -> list[str]:
    """Field keys of a message name (of one kind, or of every kind of that name)."""
    out: list[str] = []
    for k in [kind] if kind else kinds_of(name):
        cls = REGISTRY.get((k, name))
        if cls is None:
            continue
        for _, spec, _ in specs(cls):
            if spec.key not in out:
                out.append(spec.key)
    return out


def spec_of(name: str, key: str, kind: str | None = None) -> Spec | None:
    for k in [kind] if kind else kinds_of(name):
        cls = REGISTRY.get((k, name))
        if cls is None:
            continue
        for _, spec, _ in specs(cls):
            if spec.key == key:
                return spec
    return None


def split_words(line: str) -> list[str]:
    """Shell-like words: quotes group, ``#`` starts a comment."""
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        raise CommandError(f"cannot read the line: {exc}") from None


def parse_message_words(words: list[str]) -> MessageCommand:
    """``[q|r|n] NAME [@SEQ] key=value ...`` (already split into words)."""
    if not words:
        raise CommandError("nothing to send")
    kind: str | None = None
    if words[0].lower() in KIND_PREFIXES and len(words) > 1:
        kind = KIND_PREFIXES[words[0].lower()]
        words = words[1:]
    name = words[0].upper()
    known = kinds_of(name)
    if not known:
        raise CommandError(f"no message named {name}; messages are {', '.join(NAMES)}")
    if kind is not None and kind not in known:
        raise CommandError(f"{name} has no {kind} form; it is {'/'.join(known)}")
    seq: int | None = None
    fields: list[tuple[str, str]] = []
    allowed = keys_of(name, kind)
    for word in words[1:]:
        if word.startswith("@"):
            try:
                seq = int(word[1:], 16)
            except ValueError:
                seq = -1
            if not 0 <= seq <= 0xFF or len(word) != 3:
                raise CommandError(f"{word}: a sequence number is @ and two hex digits, like @07")
            continue
        key, sep, value = word.partition("=")
        if not sep:
            raise CommandError(f"{word!r} is not key=value")
        if key not in allowed:
            keys = " ".join(allowed) or "no fields"
            raise CommandError(f"{name} has no field {key!r}; its fields: {keys}")
        if any(k == key for k, _ in fields):
            raise CommandError(f"{key} given twice")
        fields.append((key, value))
    return MessageCommand(name, kind, tuple(fields), seq)


def parse_command(line: str) -> Command | None:
    """One typed line; None for a blank line or a comment."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    first, _, rest = stripped.partition(" ")
    if first.lower() == "raw":
        return RawCommand(raw_bytes(rest))
    words = split_words(stripped)
    if not words:
        return None
    if words[0].lower() in ("help", "?"):
        return ConsoleCommand("help")
    if words[0].lower() in ("quit", "exit"):
        return ConsoleCommand("quit")
    return parse_message_words(words)


def raw_bytes(text: str) -> bytes:
    """``raw`` text to bytes: ``\\xNN``, ``\\r`` and ``\\n`` escapes; CRLF added if absent."""
    try:
        data: bytes = codecs.escape_decode(text.encode("latin-1"))[0]
    except (UnicodeEncodeError, ValueError) as exc:
        raise CommandError(f"raw: {exc}") from None
    return data if data.endswith(b"\n") else data + b"\r\n"


def build_message(name: str, kind: str, fields: Iterable[tuple[str, str]]) -> Message:
    """The typed message, checked by the codec (raises ProtocolError with its code)."""
    return from_frame(Frame(kind, 0, name, tuple(fields)))


def help_text() -> str:
    lines = [
        "NAME key=value ...   send a message (kind from the table; prefix q/r/n to choose)",
        "r NAME @NN ...       a reply with sequence number NN (default: the request waiting)",
        "raw TEXT             send TEXT as is (\\xNN escapes), CRLF added",
        "quit                 leave (or Ctrl-D)",
        "",
    ]
    for cls in MESSAGE_TYPES:
        keys = []
        for _, spec, required in specs(cls):
            keys.append(f"{spec.key}=" if required else f"[{spec.key}=]")
        lines.append(f"  {cls.KIND} {cls.NAME:<6} {' '.join(keys)}".rstrip())
    return "\n".join(lines)


def complete(line: str, text: str) -> list[str]:
    """Completion candidates for ``text``, the word under the cursor in ``line`` (readline)."""
    before = line[: len(line) - len(text)] if line.endswith(text) else line
    words = before.split()
    if words and words[0].lower() in KIND_PREFIXES:
        kind: str | None = KIND_PREFIXES[words[0].lower()]
        words = words[1:]
    else:
        kind = None
    if not words:
        if kind is None:
            pool = [*NAMES, *CONSOLE_WORDS]
        else:
            pool = [n for n in NAMES if kind in kinds_of(n)]
        return [n for n in pool if n.startswith(text.upper()) or n.startswith(text)]
    name = words[0].upper()
    if name not in NAMES:
        return []
    if "=" in text:
        key, _, value = text.partition("=")
        spec = spec_of(name, key, kind)
        if spec is None:
            return []
        return [f"{key}={c}" for c in spec.choices if c.startswith(value)]
    typed = {w.partition("=")[0] for w in words[1:]}
    return [f"{k}=" for k in keys_of(name, kind) if k.startswith(text) and k not in typed]
