"""The faults a simulated vehicle can be made to commit, for the bench and the tests."""

from __future__ import annotations

from enum import Enum


class FaultKind(Enum):
    OVER_TEMPERATURE = "over_temperature"
    CELL_OVER_VOLTAGE = "cell_over_voltage"
    BMS_STOP = "bms_stop"
    UNPLUG = "unplug"
    SILENT = "silent"
    GARBAGE = "garbage"
    OVERDRAW = "overdraw"
    LIE_VOLTAGE = "lie_voltage"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    FaultKind.OVER_TEMPERATURE: "The battery heats past the top of its charging window.",
    FaultKind.CELL_OVER_VOLTAGE: "One cell rises above its maximum voltage; the BMS reports it.",
    FaultKind.BMS_STOP: "The battery management system opens its charge switch.",
    FaultKind.UNPLUG: "The cable is pulled: data and power disconnect.",
    FaultKind.SILENT: "The vehicle stops talking (a hung controller).",
    FaultKind.GARBAGE: "Noise on the data line: random bytes and broken lines.",
    FaultKind.OVERDRAW: "The vehicle draws more current than it was granted.",
    FaultKind.LIE_VOLTAGE: "The vehicle declares a pack that does not match its real voltage.",
}
