"""``pev-console``: watch, type and script PEV Link lines on a serial port or pty.

Modules: :mod:`render` turns one recorded line into display text (pure functions);
:mod:`commands` turns a typed command into a message; :mod:`session` owns the port, the one reader
task, the log and the replay; :mod:`script` runs ``--script`` files; :mod:`roles` plays a vehicle
(``--as-vehicle``) or a minimal station (``--as-station``); :mod:`cli` is the command line.
Every line is decoded by the shared codec in :mod:`firmware.pevlink`; the console has no parser of
its own.
"""
