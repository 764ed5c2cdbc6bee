"""The station on MQTT: its state, Home Assistant discovery, and the budget from HA when allowed."""
