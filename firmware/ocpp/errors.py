"""The uplink's own error."""


class LinkLost(Exception):
    """The websocket closed (or was never open) while a call waited for its answer."""
