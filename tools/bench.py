"""`python -m tools.bench`: how long the build and a boot take (medians; timings live here,
never in pass/fail tests)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tools.qemu import Outcome, QemuConfig, run


def _median(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _repetitions(text: str) -> int:
    """argparse type of -n: an integer >= 1 (a median needs at least one timing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a number of repetitions (>= 1)")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    ap.add_argument("-n", type=_repetitions, default=5, help="repetitions (default 5)")
    args = ap.parse_args(argv)
    import build

    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        build_s = _median(lambda: build.main(["--out", str(out)]), args.n)
        image = out / "kernel.elf"
        rows = [("build (generate, assemble, verify, link, write)", build_s)]
        for append in ("selftest=list", "selftest=all", ""):
            cfg = QemuConfig(image, append=append, timeout=60)

            def boot(cfg=cfg) -> None:
                result = run(cfg)
                if result.outcome is not Outcome.PASS:
                    raise SystemExit(f"boot failed: {result.reason}")

            rows.append((f"boot to exit, TCG, '{append or 'demo'}'", _median(boot, args.n)))
    for what, seconds in rows:
        print(f"{seconds * 1000:9.1f} ms  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
