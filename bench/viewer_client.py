"""``python -m bench.viewer_client HOST PORT N``: N clients holding ``/api/events`` open.

Run as its own process by ``bench viewers`` so the viewers' own CPU does not count against the
API requests being timed. Each viewer is a bare asyncio protocol that sends one request and counts
the events in what comes back, the least a client can cost, so that on a small machine the
viewers take as little CPU from the daemon as they can. Prints ``ready CONNECTED REFUSED FAILED``
once every viewer has its first event or was refused (at most 90 s), then ``done EVENTS`` when its
standard input closes.
"""

from __future__ import annotations

import asyncio
import sys

REQUEST = b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


class Viewer(asyncio.Protocol):
    def __init__(self, state: dict[str, int]) -> None:
        self.state = state
        self.head = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        if self.head:
            self.head = False
            if not data.startswith(b"HTTP/1.1 200"):
                self.state["refused"] += 1
                return
            self.state["connected"] += 1
        self.state["events"] += data.count(b"\nevent:") + data.startswith(b"event:")


async def main(host: str, port: int, count: int) -> None:
    state = {"connected": 0, "refused": 0, "failed": 0, "events": 0}
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    for n in range(count):
        try:
            transport, _ = await loop.create_connection(lambda: Viewer(state), host, port)
            transports.append(transport)
        except OSError:
            state["failed"] += 1
        if n % 50 == 49:
            await asyncio.sleep(0.05)  # a crowd arriving, not a single burst
    deadline = loop.time() + 90.0
    while loop.time() < deadline:
        if state["connected"] + state["refused"] + state["failed"] >= count:
            break
        await asyncio.sleep(0.1)
    print(f"ready {state['connected']} {state['refused']} {state['failed']}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    print(f"done {state['events']}", flush=True)
    for transport in transports:
        transport.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
