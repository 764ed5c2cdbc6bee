"""The bench: the station on simulated hardware with simulated vehicles."""
