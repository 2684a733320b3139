"""KTAP version 1 parser: a pure function from serial-console text to typed results.

The kernel prints its self-test results on the serial console in KTAP v1 (the format of Linux
KUnit), possibly among ordinary log lines::

    KTAP version 1
    1..3
    # entry: checking the ring-3 page fault path
    ok 1 pf_user
    not ok 2 nmi_nesting # RCU not watching in NMI
    ok 3 ud2_kernel # SKIP needs selftest=all

Rules (following the KTAP spec and kunit_tool):

- Lines before the first ``KTAP version N`` (or ``TAP version N``) line are ignored, except for the
  panic banner. Whatever precedes ``KTAP version`` on its line (a log prefix such as a timestamp)
  is stripped, by length, from every later line, as kunit_tool does.
- Lines that are not KTAP (kernel log output) are ignored; nested (indented) subtests are not
  interpreted: their parent's result line summarises them.
- A diagnostic ``# text`` belongs to the next result line: the diagnostics printed after test N-1's
  result and before test N's result are test N's. Diagnostics after the last result are kept in
  ``KtapResult.trailing``.
- In a result line, text after `` # `` is the directive: ``SKIP reason`` marks the test skipped;
  anything else is the reason (for ``not ok``: why it failed).
- A line starting with ``PANIC:`` is the kernel's banner for an unexpected exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_RE = re.compile(r"\b(K?TAP) version (\d+)\s*$")
_PLAN_RE = re.compile(r"^1\.\.(\d+)\s*(?:#.*)?$")
_RESULT_RE = re.compile(r"^(not ok|ok) (\d+)\b(?: - | )?(.*?)(?:\s+#\s*(.*?))?\s*$")
_DIAG_RE = re.compile(r"^#(?: ?)(.*?)\s*$")
_SKIP_RE = re.compile(r"^SKIP\b\s*(.*)$", re.IGNORECASE)
PANIC_PREFIX = "PANIC:"


@dataclass(frozen=True)
class KtapTest:
    """One ``ok``/``not ok`` result line and the diagnostics that preceded it."""

    number: int
    name: str
    ok: bool
    skipped: bool = False
    reason: str = ""
    diagnostics: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """True for ``not ok`` results that are not skipped."""
        return not self.ok and not self.skipped


@dataclass(frozen=True)
class KtapResult:
    """Everything parsed from one console log."""

    version: int | None
    plan: int | None
    tests: tuple[KtapTest, ...]
    missing: tuple[int, ...]
    panic: str | None
    trailing: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[KtapTest, ...]:
        """The results that failed (``not ok`` and not skipped)."""
        return tuple(t for t in self.tests if t.failed)

    @property
    def skipped(self) -> tuple[KtapTest, ...]:
        """The results that were skipped."""
        return tuple(t for t in self.tests if t.skipped)

    @property
    def passed(self) -> bool:
        """True iff a plan was printed, every planned result is present, none failed, no result
        was malformed or outside the plan, and the kernel did not panic."""
        return (
            self.plan is not None
            and not self.missing
            and not self.failed
            and not self.errors
            and self.panic is None
        )

    def summary(self) -> str:
        """One line such as ``5 tests: 3 passed, 1 failed, 1 skipped, 0 missing``."""
        n_ok = sum(1 for t in self.tests if t.ok and not t.skipped)
        planned = "?" if self.plan is None else str(self.plan)
        text = (
            f"{planned} tests: {n_ok} passed, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped, {len(self.missing)} missing"
        )
        if self.panic is not None:
            text += f"; {self.panic}"
        return text


def find_panic(text: str) -> str | None:
    """Return the first line that starts with ``PANIC:`` (stripped), or None."""
    for line in text.splitlines():
        if line.startswith(PANIC_PREFIX):
            return line.strip()
    return None


def parse(text: str) -> KtapResult:
    """Parse KTAP v1 results out of console text. Never raises on malformed input: problems
    (duplicate results, results outside the plan, a missing version line) go to ``errors``."""
    lines = [line.rstrip("\r") for line in text.splitlines()]
    version: int | None = None
    start = 0
    prefix_len = 0
    for index, line in enumerate(lines):
        match = _VERSION_RE.search(line)
        if match:
            version = int(match.group(2))
            prefix_len = match.start()
            start = index + 1
            break

    errors: list[str] = []
    if version is None:
        errors.append("no 'KTAP version' line")
    plan: int | None = None
    tests: list[KtapTest] = []
    pending: list[str] = []
    seen: set[int] = set()
    panic = find_panic(text)
    for raw in lines[start:]:
        line = raw[prefix_len:] if prefix_len and len(raw) >= prefix_len else raw
        if panic is None and line.startswith(PANIC_PREFIX):
            panic = line.strip()
        if match := _PLAN_RE.match(line):
            if plan is None:
                plan = int(match.group(1))
            else:
                errors.append(f"second plan line {line.strip()!r}")
        elif match := _RESULT_RE.match(line):
            test = _make_test(match, tuple(pending))
            pending.clear()
            if test.number in seen:
                errors.append(f"duplicate result for test {test.number}")
            seen.add(test.number)
            tests.append(test)
        elif match := _DIAG_RE.match(line):
            pending.append(match.group(1))

    missing: tuple[int, ...] = ()
    if plan is not None:
        missing = tuple(n for n in range(1, plan + 1) if n not in seen)
        errors.extend(f"result {n} outside plan 1..{plan}" for n in sorted(seen) if n > plan)
    return KtapResult(
        version=version,
        plan=plan,
        tests=tuple(tests),
        missing=missing,
        panic=panic,
        trailing=tuple(pending),
        errors=tuple(errors),
    )


def _make_test(match: re.Match[str], diagnostics: tuple[str, ...]) -> KtapTest:
    """Build a KtapTest from a matched result line."""
    status, number, name, directive = match.groups()
    directive = directive or ""
    skip = _SKIP_RE.match(directive)
    return KtapTest(
        number=int(number),
        name=name.strip(),
        ok=status == "ok",
        skipped=skip is not None,
        reason=skip.group(1).strip() if skip else directive.strip(),
        diagnostics=diagnostics,
    )
