"""Host-side tools: QEMU runner, KTAP parser, QEMU interrupt-log parser and the boot CLI."""
