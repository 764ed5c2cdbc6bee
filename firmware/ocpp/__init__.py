"""OCPP 1.6J charge point uplink: the station joins an operator's central system (docs/ocpp.md)."""
