"""The virtual-time loop: its clock jumps to the next timer, and it still hears what it must."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading

from hal.sim.vtime import LoopClock, run_virtual


def test_sleeps_run_in_order_in_simulated_time() -> None:
    async def main() -> list[tuple[str, float]]:
        clock = LoopClock()
        seen: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            seen.append((name, clock.monotonic()))

        await asyncio.gather(sleeper("late", 3600.0), sleeper("early", 0.25))
        return seen

    assert run_virtual(main()) == [("early", 0.25), ("late", 3600.0)]


def test_a_callback_handed_over_by_a_thread_runs() -> None:
    """Polls are skipped with only the loop's own pipe registered; a thread's call still runs."""

    async def main() -> str:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        clock = LoopClock()

        async def tick() -> None:  # timers keep the loop's polls non-blocking, so skipped
            while not done.done():
                await clock.sleep(1.0)

        ticking = asyncio.ensure_future(tick())
        threading.Thread(
            target=lambda: loop.call_soon_threadsafe(done.set_result, "from a thread")
        ).start()
        result = await done
        await ticking
        return result

    assert run_virtual(main()) == "from a thread"


def test_a_registered_socket_is_still_polled() -> None:
    """A file descriptor of its own (not a scenario's, but allowed) is read as on any loop."""

    async def main() -> bytes:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            loop = asyncio.get_running_loop()
            got: asyncio.Future[bytes] = loop.create_future()

            def readable() -> None:
                if not got.done():
                    got.set_result(a.recv(16))

            loop.add_reader(a.fileno(), readable)
            clock = LoopClock()

            async def tick() -> None:  # timers keep the loop's polls non-blocking
                for _ in range(10):
                    await clock.sleep(1.0)

            ticking = asyncio.ensure_future(tick())
            b.send(b"hello")
            data = await got
            await ticking
            loop.remove_reader(a.fileno())
            return data
        finally:
            a.close()
            b.close()

    assert run_virtual(main()) == b"hello"


def test_a_signal_handler_added_on_the_loop_runs() -> None:
    """Signals arrive through the loop's own wake-up pipe: with a handler, its polls are made."""

    async def main() -> float | None:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, got.set)
        try:
            clock = LoopClock()
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(1000):  # timers keep the loop's polls non-blocking
                await clock.sleep(1.0)
                if got.is_set():
                    return clock.monotonic()
            return None
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    assert run_virtual(main()) is not None
