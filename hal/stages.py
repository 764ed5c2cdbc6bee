"""Setting a power stage and checking that it took the setting.

A stage that acknowledged a write may still hold something else: a write lost on the line, a front
panel turned by hand, a firmware that clamps. The station therefore never trusts a write alone: it
reads the set points back and compares them within the part's resolution: half a step above (a
part that rounds to its step), a whole step below (a driver that steps a limit down, so as never to
exceed a grant: hal/elcon.py). A difference is :class:`hal.errors.StageMismatch`, a fault of the
port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from hal.errors import StageError, StageMismatch
from hal.interfaces import PowerStage, StageLimits, StageStatus

_ROUNDING = 0.51
"""Half a step, and a little for the floating-point error of the scale factors."""
_STEPPED_DOWN = 1.01
"""A whole step below, likewise."""


def _off(held: float, asked: float, step: float) -> bool:
    return not -step * _STEPPED_DOWN <= held - asked <= step * _ROUNDING


def check_range(limits: StageLimits, voltage_v: float | None, current_a: float | None) -> None:
    """Refuse a set point the part cannot hold, before anything is sent."""
    if voltage_v is not None and not 0.0 <= voltage_v <= limits.max_voltage_v:
        raise StageError(
            f"voltage limit {voltage_v:g} V is outside the stage's 0-{limits.max_voltage_v:g} V"
        )
    if current_a is not None and not 0.0 <= current_a <= limits.max_current_a:
        raise StageError(
            f"current limit {current_a:g} A is outside the stage's 0-{limits.max_current_a:g} A"
        )


def verify(
    status: StageStatus,
    limits: StageLimits,
    *,
    voltage_v: float | None = None,
    current_a: float | None = None,
    output_on: bool | None = None,
) -> None:
    """Raise :class:`StageMismatch` when ``status`` does not hold what was set."""
    problems: list[str] = []
    if voltage_v is not None and _off(status.voltage_set_v, voltage_v, limits.voltage_step_v):
        problems.append(f"voltage limit {status.voltage_set_v:g} V, set {voltage_v:g} V")
    if current_a is not None and _off(status.current_set_a, current_a, limits.current_step_a):
        problems.append(f"current limit {status.current_set_a:g} A, set {current_a:g} A")
    if output_on is not None and status.output_on != output_on:
        problems.append(
            f"output {'on' if status.output_on else 'off'}, set {'on' if output_on else 'off'}"
        )
    if problems:
        raise StageMismatch("stage reads back " + "; ".join(problems))


async def apply_setpoints(
    stage: PowerStage, voltage_v: float | None = None, current_a: float | None = None
) -> StageStatus:
    """Set the voltage and/or current limit, read them back and verify; returns the read-back."""
    check_range(stage.limits, voltage_v, current_a)
    if voltage_v is not None:
        await stage.set_voltage(voltage_v)
    if current_a is not None:
        await stage.set_current(current_a)
    status = await stage.read()
    verify(status, stage.limits, voltage_v=voltage_v, current_a=current_a)
    return status


async def apply_output(stage: PowerStage, on: bool) -> StageStatus:
    """Switch the output and verify that it followed (a tripped stage refuses to stay on)."""
    await stage.set_output(on)
    status = await stage.read()
    verify(status, stage.limits, output_on=on)
    return status


Closer = Callable[[], Awaitable[None]]
Opener = Callable[[], Awaitable[tuple[PowerStage, Closer | None]]]
"""Builds a stage's driver (and what must be closed after it): called on first use."""


class LazyStage(PowerStage):
    """A stage opened on first use, with one request at a time on its line.

    A station starts while a stage is unplugged and says so at the first session on that port, not
    at boot. The lock keeps a trip's "output off" from interleaving with a set point on the same
    Modbus line (a request and its answer are one transaction).
    """

    def __init__(self, part: str, opener: Opener) -> None:
        self.part = part
        self._opener = opener
        self._inner: PowerStage | None = None
        self._closer: Closer | None = None
        self._opened = False
        self._lock = asyncio.Lock()

    @property
    def inner(self) -> PowerStage | None:
        return self._inner

    @property
    def busy(self) -> bool:
        """A request is on the line (or the part is being opened)."""
        return self._lock.locked()

    @property
    def limits(self) -> StageLimits:
        if self._inner is None or not self._opened:
            raise StageError(f"{self.part}: the stage has not been opened")
        return self._inner.limits

    async def open(self) -> None:
        """Open the part once; after a failure the next call tries again."""
        async with self._lock:
            if self._opened:
                return
            if self._inner is None:
                self._inner, self._closer = await self._opener()
            await self._inner.open()
            self._opened = True

    async def _stage(self) -> PowerStage:
        if not self._opened:
            await self.open()
        assert self._inner is not None
        return self._inner

    async def set_voltage(self, voltage_v: float) -> None:
        stage = await self._stage()
        async with self._lock:
            await stage.set_voltage(voltage_v)

    async def set_current(self, current_a: float) -> None:
        stage = await self._stage()
        async with self._lock:
            await stage.set_current(current_a)

    async def set_output(self, on: bool) -> None:
        stage = await self._stage()
        async with self._lock:
            await stage.set_output(on)

    async def read(self) -> StageStatus:
        stage = await self._stage()
        async with self._lock:
            return await stage.read()

    async def close(self) -> None:
        async with self._lock:
            if self._inner is not None:
                await self._inner.close()
            if self._closer is not None:
                await self._closer()
            self._inner = self._closer = None
            self._opened = False

    def describe(self) -> dict[str, object]:
        if self._inner is None:
            return {"part": self.part, "opened": False}
        return {**self._inner.describe(), "opened": self._opened}
