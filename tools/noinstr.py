"""`python -m tools.noinstr [IMAGE]`: the build's noinstr check (linker/noinstr.py) on an image
file, for a look at an image without building it.  `check` is the same function."""

from __future__ import annotations

import sys

from linker.noinstr import Finding, check, main

__all__ = ["Finding", "check", "main"]

if __name__ == "__main__":
    sys.exit(main())
