"""Station logic: ports, sessions, power sharing, safety."""
