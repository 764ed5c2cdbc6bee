"""``python -m bench.viewer_client URL N``: N clients holding an event stream open, reading all.

Run as its own process by ``bench viewers`` so the viewers' own CPU does not count against the
API requests being timed. Prints ``ready CONNECTED REFUSED`` once every client has its first
event (or was refused; at most 90 s), then ``done EVENTS`` when its standard input closes.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp


async def viewer(session: aiohttp.ClientSession, url: str, state: dict[str, int]) -> None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
            if response.status != 200:
                state["refused"] += 1
                return
            first = True
            async for chunk in response.content.iter_any():
                events = chunk.count(b"event:")
                state["events"] += events
                if first and events:
                    state["connected"] += 1
                    first = False
    except (aiohttp.ClientError, OSError):
        state["failed"] += 1


async def main(url: str, count: int) -> None:
    state = {"connected": 0, "refused": 0, "failed": 0, "events": 0}
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        for n in range(count):
            tasks.append(asyncio.create_task(viewer(session, url, state)))
            if n % 50 == 49:
                await asyncio.sleep(0.05)  # a crowd arriving, not a single burst
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90.0
        while loop.time() < deadline:
            if state["connected"] + state["refused"] + state["failed"] >= count:
                break
            await asyncio.sleep(0.1)
        print(f"ready {state['connected']} {state['refused']} {state['failed']}", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        print(f"done {state['events']}", flush=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
