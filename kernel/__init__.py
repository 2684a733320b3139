"""The kernel: assembly sources by subsystem and the Python definitions that generate parts."""
