"""The bench world: what flows through each port, given its relay and the vehicle on it.

Current flows only while the relay conducts (coil on, watchdog holding, operate time passed); the
port's sensor model then sees the vehicle's terminal voltage and current, and 0 V / 0 A otherwise.
On a high-voltage port the ADS1115 model sees the voltage through the divider instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hal.clock import Clock
from hal.interfaces import PlugDetect
from hal.sim.i2c import SimI2C
from hal.sim.ina219 import Ina219Model
from hal.sim.ina228 import Ina228Model
from hal.sim.relay import SimRelay
from hal.sim.serial_pty import PtyCable

if TYPE_CHECKING:
    from hal.sim.ads1115 import Ads1115Model
    from hal.sim.elcon import SimElconCharger
    from hal.sim.riden import SimRiden


class SimLoad(Protocol):
    """What the world needs from a simulated vehicle (host/vehicle implements it)."""

    def advance(self, dt_s: float, supply_closed: bool) -> None: ...

    @property
    def terminal_voltage_v(self) -> float: ...

    @property
    def current_a(self) -> float: ...


SensorModel = Ina219Model | Ina228Model


@dataclass
class SimPort:
    port_id: int
    relay: SimRelay
    sensor: SensorModel
    bus: SimI2C | None = None
    address: int = 0x40
    cable: PtyCable | None = None
    load: SimLoad | None = None
    plugged: bool | None = None
    """The detect pin: True with a simulated vehicle on the port, False for a moment after it is
    unplugged, None otherwise (an external device on the pty brings no detect pin)."""
    unplugged_at: float | None = None
    stuck_reading: tuple[float, float] | None = None
    """Force the sensor to see (volts, amps) whatever flows: an implausible or stuck sensor."""
    history: list[tuple[float, float, float]] = field(default_factory=list)
    stage: SimRiden | None = None
    """The port's simulated CC/CV stage, whose load is the vehicle while the relay conducts."""
    charger: SimElconCharger | None = None
    """A high-voltage port's simulated TC/Elcon charger (its stage on CAN), fed the same way."""
    adc: Ads1115Model | None = None
    """A high-voltage port's ADS1115: it sees the pack's voltage through the divider, and the
    low-side INA only the current."""
    adc_channel: int = 0
    divider_ratio: float = 1.0

    @property
    def has_stage(self) -> bool:
        """The station, not the vehicle, limits this port's current."""
        return self.stage is not None or self.charger is not None


class StageThroughRelay:
    """What a port's stage feeds: the vehicle's pack while the relay conducts, nothing otherwise.

    The stage sets the limits a bare pack draws within (``set_supply_limits``); the world then
    advances the vehicle in its own step, so the vehicle is stepped once, not twice.
    """

    def __init__(self, port: SimPort) -> None:
        self.port = port
        self.voltage_limit_v = 0.0
        self.current_limit_a = 0.0

    def _connected(self) -> SimLoad | None:
        return self.port.load if self.port.relay.conducting else None

    def supply(self, voltage_limit_v: float, current_limit_a: float, dt_s: float) -> None:
        self.voltage_limit_v, self.current_limit_a = voltage_limit_v, current_limit_a
        load = self.port.load
        set_limits = getattr(load, "set_supply_limits", None)
        if set_limits is not None:
            set_limits(voltage_limit_v, current_limit_a)

    @property
    def terminal_voltage_v(self) -> float:
        load = self._connected()
        if load is not None:
            return load.terminal_voltage_v
        return self.voltage_limit_v if self.current_limit_a > 0 else 0.0

    @property
    def current_a(self) -> float:
        load = self._connected()
        return load.current_a if load is not None else 0.0


UNPLUG_SHOWN_S = 1.0
"""How long the detect pin reads "out" after a simulated vehicle leaves: many supervisor polls."""


class SimPlugDetect(PlugDetect):
    """The detect pin of a simulated port, following the world's vehicles."""

    def __init__(self, port: SimPort, clock: Clock) -> None:
        self.port = port
        self.clock = clock

    def plugged(self) -> bool | None:
        port = self.port
        if (
            port.plugged is False
            and port.unplugged_at is not None
            and self.clock.monotonic() - port.unplugged_at >= UNPLUG_SHOWN_S
        ):
            port.plugged = None
        return port.plugged


class BenchWorld:
    def __init__(self, clock: Clock, ports: dict[int, SimPort], physics_dt_s: float = 0.05) -> None:
        self.clock = clock
        self.ports = ports
        self.physics_dt_s = physics_dt_s
        self._last = clock.monotonic()
        self._port_last = dict.fromkeys(ports, self._last)
        """Each port's physics is at this time (ahead of ``_last`` only through sync_port)."""
        self._port_conducting: dict[int, bool] = {}
        """Whether each port's relay conducted at its last step."""
        self.steady_step_s = 0.0
        """How long a steady port's physics may lag behind a read (:meth:`sync_port`); 0: not."""
        self.on_stepped: Callable[[int], None] | None = None
        """Called with a port's id after its physics moved on (the fast runner's vehicles wake)."""

    def attach(self, port_id: int, load: SimLoad) -> None:
        self.ports[port_id].load = load
        self.ports[port_id].plugged = True

    def fail_sensor(self, port_id: int, transfers: int = 1_000_000) -> None:
        """The port's sensor stops answering on the bus (a broken wire or a dead part)."""
        port = self.ports[port_id]
        if port.bus is not None:
            port.bus.fail_next[port.address] = transfers

    def detach(self, port_id: int) -> None:
        if self.steady_step_s > 0:
            self.sync_port(port_id, force=True)  # a port left to lag keeps its charge so far
        port = self.ports[port_id]
        port.load = None
        port.plugged = False
        port.unplugged_at = self.clock.monotonic()
        self._update_sensor(port)

    def step(self, dt_s: float) -> None:
        for port in self.ports.values():
            self._step_port(port, dt_s)

    def _step_port(self, port: SimPort, dt_s: float, conducting: bool | None = None) -> None:
        if port.stage is not None:
            port.stage.sync()  # the limits the pack draws within, as of now
        if port.charger is not None:
            port.charger.sync()
        if conducting is None:
            conducting = port.relay.conducting
        self._port_conducting[port.port_id] = conducting
        if port.load is not None:
            port.load.advance(dt_s, conducting)
        self._update_sensor(port, conducting)

    def _update_sensor(self, port: SimPort, conducting: bool | None = None) -> None:
        if conducting is None:
            conducting = port.relay.conducting
        if port.stuck_reading is not None:
            volts, amps = port.stuck_reading
        elif port.load is not None and conducting:
            volts, amps = port.load.terminal_voltage_v, port.load.current_a
        else:
            volts, amps = 0.0, 0.0
        if port.adc is not None:  # the divider feeds the ADC; the low-side shunt sits near 0 V
            port.adc.inputs_v[port.adc_channel] = volts / port.divider_ratio
            volts = 0.0
        port.sensor.bus_voltage_v = volts
        port.sensor.current_a = amps

    def sync(self) -> None:
        """Advance every port's physics to the clock's present, in steps of at most
        ``physics_dt_s``."""
        now = self.clock.monotonic()
        for port in self.ports.values():
            self._catch_up(port, now)
        self._last = now

    def sync_port(self, port_id: int, *, force: bool = False) -> None:
        """Advance one port's physics to the present, unless it is steady and lags by less than
        ``steady_step_s`` (the fast runner; ``force`` overrides: something is about to change).

        A port is steady for as long as its load says (a vehicle's current settled on its target
        or off: unbounded; in its taper: until the current could have moved 2 mA, 1 s at most)
        and its relay conducts as it did at the last step: meanwhile the sensor and the vehicle's
        telemetry move by about what they resolve, and one longer step later gives the same
        charge (the current's response is exact over any step)."""
        port = self.ports[port_id]
        now = self.clock.monotonic()
        horizon = self._steady_for(port) if self.steady_step_s > 0 else 0.0
        if not force and now - self._port_last.get(port_id, self._last) < horizon:
            return
        self._catch_up(port, now, horizon)

    def _steady_for(self, port: SimPort) -> float:
        """How long this port's physics may lag: what its load says (0 when it says nothing),
        unless its relay no longer conducts as it did at the last step."""
        if port.stage is not None or port.charger is not None or port.stuck_reading is not None:
            return 0.0
        load = port.load
        steady_for = getattr(load, "steady_for_s", None)
        if steady_for is None:
            return 0.0
        horizon: float = steady_for()
        if horizon <= 0.0 or self._port_conducting.get(port.port_id) != port.relay.conducting:
            return 0.0
        return min(horizon, self.steady_step_s)

    def _catch_up(self, port: SimPort, now: float, horizon: float | None = None) -> None:
        """Step ``port`` to ``now``; a steady one (``horizon``: :meth:`_steady_for`, worked out
        here when not given) in one step where several were."""
        remaining = now - self._port_last.get(port.port_id, self._last)
        if remaining <= 1e-9:
            return
        if horizon is None:
            horizon = self._steady_for(port) if self.steady_step_s > 0 else 0.0
        longest = max(self.physics_dt_s, horizon)
        if self.steady_step_s > 0 and self._port_conducting.get(port.port_id):
            # A lagging port whose watchdog's hold ran out meanwhile (no switch was made, so
            # nothing brought it to the present): it conducted until then.
            lapsed = port.relay.lapsed_at()
            if lapsed is not None and now - remaining < lapsed < now:
                self._step_port(port, lapsed - (now - remaining), conducting=True)
                remaining = now - lapsed
        while remaining > 1e-9:
            dt = min(longest, remaining)
            self._step_port(port, dt)
            remaining -= dt
        self._port_last[port.port_id] = now
        if self.on_stepped is not None:
            self.on_stepped(port.port_id)

    def _whole_steps(self) -> None:
        """Advance physics by as many whole steps as have passed (the rest waits for the next)."""
        dt = self.physics_dt_s
        steps = int((self.clock.monotonic() - self._last) / dt + 1e-6)
        for _ in range(steps):
            self.step(dt)
        self._last += steps * dt
        if steps:
            for port_id in self.ports:
                self._port_last[port_id] = self._last
                if self.on_stepped is not None:
                    self.on_stepped(port_id)

    async def run(self) -> None:
        """Step the physics every ``physics_dt_s`` of the clock, each step a whole one: a tick
        that wakes a little late (always, in real time) would otherwise add a sliver of a step,
        which costs as much as a whole one."""
        while True:
            self._whole_steps()
            await self.clock.sleep(
                max(0.0, self._last + self.physics_dt_s - self.clock.monotonic())
            )
