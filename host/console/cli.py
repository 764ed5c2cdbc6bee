"""``pev-console``: the PEV Link serial console.

    pev-console /dev/ttyUSB0                    watch the line and type messages
    pev-console /dev/pts/5 --script hello.txt   send a prepared sequence, check the answers
    pev-console /dev/pts/5 --as-vehicle ebike-36v-500wh --soc 30
    pev-console /dev/ttyUSB0 --as-station       a minimal station, to try a vehicle
    pev-console --replay session.jsonl          show a recorded session (--log FILE records one)

Exit status: 0 done, 1 a script step failed, 2 the console could not start (a missing, busy or
forbidden port, a bad script or log file). docs/console.md has the details.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from firmware.pevlink.errors import ProtocolError
from hal.clock import RealClock
from hal.errors import HalError
from hal.serial_link import open_serial
from host.console.commands import (
    CommandError,
    ConsoleCommand,
    MessageCommand,
    RawCommand,
    complete,
    help_text,
    parse_command,
)
from host.console.roles import MiniStation, PortProfile, RoleError, make_vehicle, vehicle_agent
from host.console.script import ScriptError, Step, parse_script, run_script
from host.console.session import Console, LogWriter, ReplayError, replay

PROG = "pev-console"
PROMPT = "pev> "
HISTORY_FILE = Path.home() / ".pev_console_history"
EOF_LINGER_S = 1.0
"""After the last line of a piped stdin, how long answers are still shown."""
INPUT_POLL_S = 0.5


class ConsoleExit(Exception):
    """Ends the console with an exit status and a one-line message."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Watch, type and script PEV Link lines on a serial port or pty.",
        epilog="Typed commands: NAME key=value ... (type 'help' in the console).",
    )
    parser.add_argument("port", nargs="?", help="serial device, pty path or pyserial URL")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    parser.add_argument("--log", type=Path, metavar="FILE", help="record the session (JSON lines)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--script", type=Path, metavar="FILE", help="run a script, then exit")
    mode.add_argument("--as-vehicle", metavar="MODEL", help="play a simulated vehicle")
    mode.add_argument("--as-station", action="store_true", help="play a minimal station")
    mode.add_argument("--replay", type=Path, metavar="FILE", help="show a recorded session")
    parser.add_argument("--soc", type=float, default=20.0, help="--as-vehicle: state of charge, %%")
    parser.add_argument("--temp", type=float, default=25.0, help="--as-vehicle: temperature, °C")
    parser.add_argument(
        "--charge-seconds",
        type=float,
        default=60.0,
        help="--as-station: how long a charge runs before the station stops it (default 60)",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="leave after S seconds")
    parser.add_argument(
        "--no-heartbeat",
        action="store_true",
        help="do not send HB when idle (the peer may then take the line for unplugged)",
    )
    parser.add_argument("--list", action="store_true", help="list messages and vehicle models")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def open_error_text(exc: BaseException) -> str:
    """One line for a port that would not open, with the dialout hint for permissions."""
    text = str(exc)
    if "permission denied" in text.lower() and "dialout" not in text:
        text += (
            ": add your user to the 'dialout' group (sudo usermod -aG dialout $USER) "
            "and log in again"
        )
    return text


# --- input and output -----------------------------------------------------------------------


class Prompt:
    """Whether the input thread is at its prompt (then output is printed above the prompt)."""

    showing = False


def make_printer(interactive: bool) -> Callable[[str], None]:
    """Prints a line; at a terminal, keeps the prompt and what is being typed below it."""
    if not interactive:
        return lambda text: print(text, flush=True)
    import readline

    def show(text: str) -> None:
        if Prompt.showing:
            sys.stdout.write(f"\r\x1b[K{text}\n{PROMPT}{readline.get_line_buffer()}")
        else:
            sys.stdout.write(f"{text}\n")
        sys.stdout.flush()

    return show


def setup_readline() -> None:
    import readline

    def completer(text: str, state: int) -> str | None:
        options = complete(readline.get_line_buffer()[: readline.get_endidx()], text)
        return options[state] if state < len(options) else None

    readline.set_completer(completer)
    readline.set_completer_delims(" ")
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY_FILE)
    readline.set_history_length(1000)


def save_history() -> None:
    import readline

    with contextlib.suppress(OSError):
        readline.write_history_file(HISTORY_FILE)


@contextlib.contextmanager
def terminal_kept() -> Iterator[None]:
    """Puts the terminal's modes back on leaving: the input thread may be inside readline."""
    try:
        import termios

        saved = termios.tcgetattr(sys.stdin.fileno())
    except (ImportError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)


class StdinLines:
    """Lines typed or piped in, read by a daemon thread (input() blocks) into an asyncio queue."""

    def __init__(self, interactive: bool) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._interactive = interactive
        threading.Thread(target=self._run, name="console-stdin", daemon=True).start()

    def _put(self, line: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the console is leaving
            self._loop.call_soon_threadsafe(self.queue.put_nowait, line)

    def _run(self) -> None:
        while True:
            try:
                if self._interactive:
                    Prompt.showing = True
                    try:
                        line: str | None = input(PROMPT)
                    finally:
                        Prompt.showing = False
                else:
                    text = sys.stdin.readline()
                    line = text if text else None
            except (EOFError, KeyboardInterrupt, OSError, ValueError):
                line = None
            self._put(line)
            if line is None:
                return


# --- modes -------------------------------------------------------------------------------------


async def interactive(console: Console, lines: StdinLines, *, linger_s: float) -> None:
    while True:
        try:
            line = await asyncio.wait_for(lines.queue.get(), INPUT_POLL_S)
        except TimeoutError:
            if console.failure is not None:
                raise ConsoleExit(2, str(console.failure)) from None
            continue
        if line is None:
            await console.clock.sleep(linger_s)
            return
        try:
            command = parse_command(line)
        except CommandError as exc:
            console.note(f"not sent: {exc}")
            continue
        if command is None:
            continue
        if isinstance(command, ConsoleCommand):
            if command.word == "quit":
                return
            for text in help_text().splitlines():
                console.show(text)
            continue
        try:
            if isinstance(command, RawCommand):
                await console.send_raw(command.data)
            elif isinstance(command, MessageCommand):
                await console.send_command(command)
        except (CommandError, ProtocolError) as exc:
            console.note(f"not sent: {exc}")


async def port_errors_end(running: Coroutine[Any, Any, None]) -> None:
    """A played side runs in task groups: a failed port ends it with one line, not a traceback."""
    try:
        await running
    except ExceptionGroup as group:
        failed, _ = group.split(OSError)
        if failed is None:
            raise
        first: BaseException = failed
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise ConsoleExit(2, str(first)) from None


async def run(args: argparse.Namespace, steps: list[Step] | None, log: LogWriter | None) -> int:
    clock = RealClock()
    plays = args.as_vehicle is not None or args.as_station
    typing = steps is None and not plays
    tty = typing and sys.stdin.isatty()
    show = make_printer(tty)
    vehicle = None
    if args.as_vehicle is not None:
        vehicle = make_vehicle(args.as_vehicle, args.soc, args.temp)
    try:
        transport = await open_serial(args.port, args.baud)
    except (HalError, OSError) as exc:
        raise ConsoleExit(2, open_error_text(exc)) from None
    console = Console(transport, clock, show=show, log=log, heartbeat=not args.no_heartbeat)
    try:
        async with asyncio.timeout(args.duration):
            if steps is not None:
                async with console.running():
                    result = await run_script(console, steps)
                if not result.ok:
                    raise ConsoleExit(1, f"script failed at {result.describe()}")
                console.note(result.describe())
            elif vehicle is not None:
                await port_errors_end(vehicle_agent(console, vehicle).run())
            elif args.as_station:
                station = MiniStation(console, PortProfile(charge_s=args.charge_seconds))
                await port_errors_end(station.run())
            else:
                if tty:
                    setup_readline()
                console.note("PEV Link console: type 'help' for the messages, 'quit' to leave")
                lines = StdinLines(tty)
                async with console.running():
                    await interactive(console, lines, linger_s=0.0 if tty else EOF_LINGER_S)
                if console.failure is not None:
                    raise ConsoleExit(2, str(console.failure))
    except TimeoutError:
        pass  # --duration is over
    finally:
        if tty:
            save_history()
            sys.stdout.write("\n")
        with contextlib.suppress(Exception):
            await transport.close()
    return 0


def list_things() -> None:
    print(help_text())
    print("\nvehicle models (--as-vehicle):")
    from host.vehicle.catalog import load_catalog

    for spec in load_catalog():
        print(f"  {spec.id:24} {spec.name}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def fail(status: int, message: str) -> int:
        print(f"{PROG}: {message}", file=sys.stderr)
        return status

    if args.list:
        list_things()
        return 0
    if args.replay is not None:
        try:
            replay(args.replay, lambda text: print(text, flush=True))
        except ReplayError as exc:
            return fail(2, str(exc))
        except BrokenPipeError:
            return 0
        return 0
    if not args.port:
        return fail(2, "give the serial port (for example /dev/ttyUSB0), or --replay FILE")
    if args.baud <= 0:
        return fail(2, f"--baud must be a positive number, not {args.baud}")
    steps: list[Step] | None = None
    if args.script is not None:
        try:
            steps = parse_script(args.script.read_text(encoding="utf-8"))
        except OSError as exc:
            return fail(2, f"cannot read script {args.script}: {exc.strerror or exc}")
        except ScriptError as exc:
            return fail(2, f"{args.script}: {exc}")
    log: LogWriter | None = None
    if args.log is not None:
        try:
            log = LogWriter.open(args.log)
        except OSError as exc:
            return fail(2, f"cannot write log {args.log}: {exc.strerror or exc}")
    try:
        with terminal_kept() if sys.stdin.isatty() else contextlib.nullcontext():
            return asyncio.run(run(args, steps, log))
    except ConsoleExit as exc:
        return fail(exc.status, exc.message) if exc.message else exc.status
    except RoleError as exc:
        return fail(2, str(exc))
    except KeyboardInterrupt:
        return 0
    except (HalError, OSError) as exc:
        if args.debug:
            raise
        return fail(2, str(exc))
    finally:
        if log is not None:
            log.close()


if __name__ == "__main__":
    sys.exit(main())
