"""The kernel's event log on the host: decode.py reads it, judge.py judges it."""
