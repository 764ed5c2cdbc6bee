"""The bench backend: register-level sensors, relays behind a watchdog, pty cables, a world."""
