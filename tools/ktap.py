"""KTAP version 1 parser: a pure function from serial-console text to typed results.

The kernel prints its self-test results on the serial console in KTAP v1 (the format of Linux
KUnit), possibly among ordinary log lines, each suite a nested subtest::

    KTAP version 1
    1..2
        KTAP version 1
        # Subtest: exceptions
        1..2
    # trap: vector=0x3 ...
        ok 1 int3
        # general_protection: wrong error code
        not ok 2 general_protection # wrong error code
    # exceptions: pass:1 fail:1 skip:0 total:2
    not ok 1 exceptions
        KTAP version 1
        # Subtest: arch
        1..1
        ok 1 idt # SKIP needs selftest=all
    ok 2 arch

Rules (following the KTAP spec, Documentation/dev-tools/ktap.rst, and kunit_tool), which read
Linux KUnit output as printed on its console too:

- Each line's printk prefix is stripped first: a log level (``<6>``), the time stamp
  (``[    0.512345] ``) and the caller id after it (``[    T1]``), as Linux prints them
  (PRINTK_PREFIX); tabs are expanded (KUnit before 5.17 indented subtests with a tab).
- Lines before the first ``KTAP version N`` (or ``TAP version N``) line are ignored, except for the
  panic banner. Whatever else precedes ``KTAP version`` on its line (another log prefix) is
  stripped, by length, from every later line, as kunit_tool does. KTAP 1 and TAP 13 and 14 are
  read; another version is an error.
- Nesting is by indentation (KUnit: 4 spaces a level; the spec: 2): an indented version line or
  ``# Subtest: NAME`` line opens a subtest (``# Subtest:`` names it; KUnit has printed it
  before the version line, after it, and alone), whose plan and results are indented like it;
  the next result line less indented is the subtest's own result, and the subtest's results
  are its ``subtests``. A subtest's plan may be missing (KUnit prints none for parameterised
  cases; kunit_tool accepts that): its results are then what it printed. The top level needs
  its plan to pass.
- Lines that are not KTAP (kernel log output) are ignored.
- A diagnostic ``# text``, at any indentation, belongs to the next result line: the diagnostics
  printed after one result and before the next are the next one's (kunit_tool's log of a test).
  Diagnostics after the last result are kept in ``KtapResult.trailing``.
- In a result line, text after `` # `` is the directive: ``SKIP reason`` marks the test skipped;
  ``TODO reason`` marks it as not expected to pass yet, so that ``not ok`` is no failure (TAP
  and the KTAP spec; kunit_tool reads only SKIP and counts it failed); anything else is the
  reason (for ``not ok``: why it failed), and the result stays ``ok``/``not ok``.
- A line starting with ``PANIC:`` is the kernel's banner for an unexpected exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# What Linux prints before a console message: a log level, the time stamp, the caller id.
PRINTK_PREFIX = r"(?:<[0-7]>)?(?:\[ *\d+\.\d+\](?: ?\[ *[CT]\d+\])? )?"
_PRINTK_RE = re.compile(PRINTK_PREFIX)
VERSIONS = {"KTAP": (1,), "TAP": (13, 14)}  # what kunit_tool reads
_VERSION_RE = re.compile(r"\b(K?TAP) version (\d+)\s*$")
_PLAN_RE = re.compile(r"^1\.\.(\d+)\s*(?:#.*)?$")
_RESULT_RE = re.compile(r"^(not ok|ok) (\d+)\b(?: - | )?(.*?)(?:\s+#\s*(.*?))?\s*$")
_SUBTEST_RE = re.compile(r"^# Subtest: (.*?)\s*$")
_DIAG_RE = re.compile(r"^#(?: ?)(.*?)\s*$")
_SKIP_RE = re.compile(r"^SKIP\b\s*(.*)$", re.IGNORECASE)
_TODO_RE = re.compile(r"^TODO\b\s*(.*)$", re.IGNORECASE)
PANIC_PREFIX = "PANIC:"


@dataclass(frozen=True)
class KtapTest:
    """One ``ok``/``not ok`` result line, the diagnostics that preceded it and, for a suite, the
    results of its subtests (in its own numbering, from 1)."""

    number: int
    name: str
    ok: bool
    skipped: bool = False
    reason: str = ""
    todo: bool = False
    diagnostics: tuple[str, ...] = ()
    subtests: tuple[KtapTest, ...] = ()

    @property
    def failed(self) -> bool:
        """True for ``not ok`` results that are neither skipped nor TODO."""
        return not self.ok and not self.skipped and not self.todo

    @property
    def cases(self) -> tuple[KtapTest, ...]:
        """The test cases under this result, depth first: itself when it has no subtests."""
        if not self.subtests:
            return (self,)
        return tuple(case for sub in self.subtests for case in sub.cases)


@dataclass(frozen=True)
class KtapResult:
    """Everything parsed from one console log. ``tests`` are the top-level results (the suites
    when the output nests); ``cases`` are the results without subtests, in order."""

    version: int | None
    plan: int | None
    tests: tuple[KtapTest, ...]
    missing: tuple[int, ...]
    panic: str | None
    trailing: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def cases(self) -> tuple[KtapTest, ...]:
        """The test cases, depth first (for flat output: the tests)."""
        return tuple(case for test in self.tests for case in test.cases)

    @property
    def failed(self) -> tuple[KtapTest, ...]:
        """The test cases that failed (``not ok`` and not skipped)."""
        return tuple(t for t in self.cases if t.failed)

    @property
    def skipped(self) -> tuple[KtapTest, ...]:
        """The test cases that were skipped."""
        return tuple(t for t in self.cases if t.skipped)

    @property
    def passed(self) -> bool:
        """True iff a plan was printed, every planned result is present (at every level), no
        result failed, none was malformed or outside its plan, and the kernel did not panic."""
        return (
            self.plan is not None
            and not self.missing
            and not self.failed
            and not any(t.failed for t in self.tests)
            and not self.errors
            and self.panic is None
        )

    def summary(self) -> str:
        """One line such as ``5 tests: 3 passed, 1 failed, 1 skipped, 0 missing``, counting
        test cases (a suite's plan stands for its cases; a missing suite counts as one);
        ``, N todo`` follows when N TODO cases did not pass."""
        cases = self.cases
        n_ok = sum(1 for t in cases if t.ok and not t.skipped)
        n_todo = sum(1 for t in cases if t.todo and not t.ok and not t.skipped)
        planned = "?" if self.plan is None else str(len(cases) + len(self.missing))
        text = (
            f"{planned} tests: {n_ok} passed, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped, {len(self.missing)} missing"
        )
        if n_todo:
            text += f", {n_todo} todo"
        if self.panic is not None:
            text += f"; {self.panic}"
        return text


def strip_printk(line: str) -> str:
    """The line without Linux's printk prefix (PRINTK_PREFIX), if it has one."""
    prefix = _PRINTK_RE.match(line)
    return line if prefix is None else line[prefix.end() :]


def find_panic(text: str) -> str | None:
    """Return the first line that starts with ``PANIC:`` (stripped), or None."""
    for line in text.splitlines():
        if line.startswith(PANIC_PREFIX):
            return line.strip()
    return None


@dataclass
class _Level:
    """A KTAP level being read: the top level or an open subtest."""

    indent: int
    name: str = ""
    plan: int | None = None
    tests: list[KtapTest] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)


def parse(text: str) -> KtapResult:
    """Parse KTAP v1 results out of console text. Never raises on malformed input: problems
    (duplicate results, results outside the plan, a missing version line, a subtest without
    its result) go to ``errors``."""
    lines = [strip_printk(line.rstrip("\r")).expandtabs() for line in text.splitlines()]
    version: int | None = None
    start = 0
    prefix_len = 0
    errors: list[str] = []
    for index, line in enumerate(lines):
        match = _VERSION_RE.search(line)
        if match:
            version = int(match.group(2))
            if version not in VERSIONS[match.group(1)]:
                errors.append(f"{match.group(1)} version {version}: not one that is read")
            prefix_len = match.start()
            start = index + 1
            break

    if version is None:
        errors.append("no 'KTAP version' line")
    levels = [_Level(indent=0)]
    pending: list[str] = []
    panic = find_panic(text)
    for raw in lines[start:]:
        line = raw[prefix_len:] if prefix_len and len(raw) >= prefix_len else raw
        if panic is None and line.startswith(PANIC_PREFIX):
            panic = line.strip()
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        if _VERSION_RE.fullmatch(body):
            if indent > levels[-1].indent:
                levels.append(_Level(indent=indent))
        elif match := _PLAN_RE.match(body):
            level = levels[-1]
            if level.plan is None:
                level.plan = int(match.group(1))
            else:
                errors.append(f"{_where(level)}second plan line {body.strip()!r}")
        elif match := _RESULT_RE.match(body):
            subtests: tuple[KtapTest, ...] = ()
            while len(levels) > 1 and indent < levels[-1].indent:
                done = levels.pop()
                errors.extend(_check_plan(done))
                subtests = tuple(done.tests)
            test = _make_test(match, tuple(pending), subtests)
            pending.clear()
            level = levels[-1]
            if test.number in level.seen:
                errors.append(f"{_where(level)}duplicate result for test {test.number}")
            level.seen.add(test.number)
            level.tests.append(test)
        elif match := _SUBTEST_RE.match(body):
            if indent > levels[-1].indent:
                levels.append(_Level(indent=indent))
            levels[-1].name = match.group(1)
        elif match := _DIAG_RE.match(body):
            pending.append(match.group(1))

    for open_level in levels[1:]:
        errors.append(f"subtest {open_level.name or '?'} has no result line")
    top = levels[0]
    missing: tuple[int, ...] = ()
    if top.plan is not None:
        missing = tuple(n for n in range(1, top.plan + 1) if n not in top.seen)
        errors.extend(f"result {n} outside plan 1..{top.plan}" for n in sorted(top.seen)
                      if n > top.plan)  # fmt: skip
    return KtapResult(
        version=version,
        plan=top.plan,
        tests=tuple(top.tests),
        missing=missing,
        panic=panic,
        trailing=tuple(pending),
        errors=tuple(errors),
    )


def _where(level: _Level) -> str:
    """The prefix that names a subtest in an error message (none for the top level)."""
    return f"subtest {level.name or '?'}: " if level.indent else ""


def _check_plan(level: _Level) -> list[str]:
    """The errors of a closed subtest: results missing from its plan or outside it (none without
    a plan)."""
    if level.plan is None:
        return []
    errors = [f"{_where(level)}result {n} missing" for n in range(1, level.plan + 1)
              if n not in level.seen]  # fmt: skip
    errors.extend(f"{_where(level)}result {n} outside plan 1..{level.plan}"
                  for n in sorted(level.seen) if n > level.plan)  # fmt: skip
    return errors


def _make_test(
    match: re.Match[str], diagnostics: tuple[str, ...], subtests: tuple[KtapTest, ...]
) -> KtapTest:
    """Build a KtapTest from a matched result line."""
    status, number, name, directive = match.groups()
    directive = directive or ""
    skip = _SKIP_RE.match(directive)
    todo = _TODO_RE.match(directive)
    marked = skip or todo
    return KtapTest(
        number=int(number),
        name=name.strip(),
        ok=status == "ok",
        skipped=skip is not None,
        todo=todo is not None,
        reason=marked.group(1).strip() if marked else directive.strip(),
        diagnostics=diagnostics,
        subtests=subtests,
    )
