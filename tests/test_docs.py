"""The documents in docs/ cannot drift from the code, and the code cites only docs/.

In docs/*.md, every reference is checked against the repository:
- a relative link `[text](path#anchor)`: the file exists, and the anchor is one of its headings;
- a path in backticks (`kernel/entry/common.s`, `tools/`, `gen.py`): the file or directory
  exists (a bare file name: somewhere in the repository); `build/...` names outputs of the
  build and is not checked; paths outside the repository are written without backticks;
- `path:name` in backticks: the file exists and contains `name` as a word (a function, a
  label, a constant);
- `tests/test_x.py::test_name`: that test function exists;
- `selftest=NAME[,NAME...]` in backticks: each NAME is registered with SELFTEST.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"^(?:\.\.?/)?[\w.-]+(?:/[\w.*-]+)*/?$")
_SELFTEST_DEF = re.compile(r"^\s*SELFTEST\s+(\w+)\s*,\s*(\w+)\s*,", re.M)


def slug(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's rule) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    out: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6}\s+(.*)", line)):
            out.add(slug(m[1]))
    return out


def selftest_names(root: Path) -> set[str]:
    """Every name selftest= takes: each self-test `SELFTEST suite, name, ...` registers and
    each suite, expanding the one-level macros that register several (`SELFTEST suite,
    \\name, ...` inside a .macro: their invocations' first argument)."""
    names: set[str] = set()
    for path in sorted((root / "kernel").rglob("*.s")):
        text = path.read_text()
        names.update(n for pair in _SELFTEST_DEF.findall(text) for n in pair)
        for macro in re.finditer(r"^\.macro\s+(\w+)(.*?)^\.endm", text, re.M | re.S):
            body = macro[2]
            m = re.search(r"SELFTEST\s+(\w+)\s*,\s*(\w*)\\(\w+)", body)
            if m is None:
                continue
            names.add(m[1])
            prefix = m[2]
            for call in re.finditer(rf"^\s*{macro[1]}\s+(\w+)", text, re.M):
                names.add(prefix + call[1])
    return names


def generated_names() -> set[str]:
    """The names of the files kernel/gen.py writes into build/gen/."""
    from kernel import gen

    with tempfile.TemporaryDirectory() as tmp:
        gen.generate(Path(tmp))
        return {p.name for p in Path(tmp).iterdir()}


@functools.cache
def _repository_names(root: Path) -> tuple[set[str], set[str]]:
    """The names of the files in the repository (not .git, .venv or build/, which are not
    walked) and of build/gen/'s, and the self-tests' names: what every Checker of `root` reads."""
    files = set()
    for _, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "build")]
        files.update(names, dirs)
    files |= generated_names()  # build/gen/: in every build, not in a clean clone
    return files, selftest_names(root)


@dataclass
class Checker:
    root: Path

    def __post_init__(self) -> None:
        self.files, self.selftests = _repository_names(self.root)

    def link(self, doc: Path, target: str) -> str | None:
        if re.match(r"^[a-z]+:", target):  # http:, mailto:
            return None
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            return f"link to {target}: no such file"
        if not file.resolve().is_relative_to(self.root.resolve()):
            return f"link to {target}: outside the repository"
        if anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            return f"link to {target}: no heading '#{anchor}' in {file.name}"
        return None

    def code(self, doc: Path, text: str) -> str | None:
        if text.startswith("selftest="):
            words = text.removeprefix("selftest=").split()
            if not words:  # the option's name alone
                return None
            value = words[0]
            unknown = [n for n in value.split(",") if n not in self.selftests]
            unknown = [n for n in unknown if n not in ("all", "list", "NAME", "NAME[")]
            return f"`{text}`: no self-test {', '.join(unknown)}" if unknown else None
        if "::" in text:
            path, _, name = text.partition("::")
            file = self.root / path
            if not file.is_file():
                return f"`{text}`: no file {path}"
            if not re.search(rf"^def {re.escape(name)}\(", file.read_text(), re.M):
                return f"`{text}`: no test {name} in {path}"
            return None
        path, colon, name = text.partition(":")
        if colon and re.fullmatch(r"[\w.]+", name) and self._looks_like_path(path):
            file = self.root / path
            if not file.is_file():
                return f"`{text}`: no file {path}"
            if not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", file.read_text()):
                return f"`{text}`: '{name}' does not occur in {path}"
            return None
        if not self._looks_like_path(text):
            return None
        if text.startswith("../"):
            return f"`{text}`: outside the repository"
        if text.startswith("build/"):
            return None
        if "/" not in text.rstrip("/"):
            if text.endswith("/"):
                return None if (self.root / text).is_dir() else f"`{text}`: no such directory"
            return None if text in self.files else f"`{text}`: no file of that name"
        if "*" in text:
            return None if list(self.root.glob(text)) else f"`{text}`: matches no file"
        return None if (self.root / text).exists() else f"`{text}`: no such file or directory"

    @staticmethod
    def _looks_like_path(text: str) -> bool:
        if text.startswith("../"):
            return True
        if not _PATH.match(text) or text.startswith(".venv"):
            return False
        return "/" in text or bool(re.fullmatch(r"\w[\w.-]*\.(?:py|s|inc|md|toml|txt)", text))

    def problems(self, doc: Path, markdown: str) -> list[str]:
        out = []
        in_code = False
        for number, line in enumerate(markdown.splitlines(), 1):
            if line.startswith("```"):
                in_code = not in_code
                continue
            if in_code:
                continue
            for target in _LINK.findall(line):
                if (p := self.link(doc, target)) is not None:
                    out.append(f"{doc.name}:{number}: {p}")
            for text in _CODE.findall(line):
                if (p := self.code(doc, text)) is not None:
                    out.append(f"{doc.name}:{number}: {p}")
        return out


DOC_FILES = sorted(DOCS.glob("*.md"))


def test_the_documents_exist():
    names = {p.name for p in DOC_FILES}
    assert names >= {"README.md", "architecture.md", "entry.md", "assembler.md", "qemu.md",
                     "experiment.md"}  # fmt: skip


@pytest.mark.parametrize("doc", DOC_FILES, ids=[p.name for p in DOC_FILES])
def test_every_reference_names_something_that_exists(doc: Path):
    assert Checker(ROOT).problems(doc, doc.read_text()) == []


def test_the_index_links_every_document():
    index = (DOCS / "README.md").read_text()
    linked = set(_LINK.findall(index))
    assert {p.name for p in DOC_FILES if p.name != "README.md"} <= {t.split("#")[0] for t in linked}


# What drift looks like: each of these must be reported.
BROKEN = {
    "[gone](nothing.md)": "no such file",
    "[anchor](entry.md#no-such-heading)": "no heading",
    "[outside](../../shared/SPEC.md)": "",
    "`kernel/entry/gone.s`": "no such file or directory",
    "`gone_file.py`": "no file of that name",
    "`kernel/entry/common.s:no_such_function`": "does not occur",
    "`tests/test_entry.py::test_that_does_not_exist`": "no test",
    "`selftest=int3,no_such_test`": "no self-test no_such_test",
    "`selftest=no_such_test hold`": "no self-test no_such_test",
    "`../shared/KEYSTONE.md`": "outside the repository",
}


@pytest.mark.parametrize("line,phrase", BROKEN.items(), ids=list(BROKEN))
def test_drift_is_reported(line: str, phrase: str):
    found = Checker(ROOT).problems(DOCS / "x.md", f"text\n{line}\n")
    assert found and phrase in found[0], found


def test_sound_references_are_accepted():
    text = ("[entry](entry.md#the-truth-tables) `kernel/entry/common.s:__idtentry_enter` "
            "`tests/test_docs.py::test_drift_is_reported` `selftest=int3,entry_user_cond_rcu` "
            "`kernel/selftest/` `gen.py` `build/gen/idt.s`")  # fmt: skip
    assert Checker(ROOT).problems(DOCS / "x.md", text) == []


def test_selftest_names_include_the_macro_registered_ones():
    names = selftest_names(ROOT)
    assert {"int3", "user_demand_fault", "entry_user_cond_rcu"} <= names
    assert {"exceptions", "user", "entry"} <= names  # suites
    assert "SELFTEST" not in names and "selftest_int3" not in names


# -- code cites docs/, never a path outside the repository ---------------------------------------

_OUTSIDE = re.compile(
    r"\.\./shared|(?<![\w/])shared/(?:seed|SPEC|DESIGN|KEYSTONE|QEMU)"
    r"|(?<!docs/)\b(?:KEYSTONE|SPEC|QEMU|DESIGN)\.md\b"
    r"|\bSPEC(?: section)? \d"
)


def outside_citations(path: str, text: str) -> list[str]:
    return [f"{path}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
            if _OUTSIDE.search(line)]  # fmt: skip


def tracked_files() -> list[str]:
    r = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:  # not a git checkout: every file but the virtualenv
        return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]  # fmt: skip
    return r.stdout.split()


@pytest.mark.parametrize(
    "line,cites",
    [
        ("(see `../shared/seed/`)", True),
        ("# KEYSTONE.md: sym_resolver", True),
        ('"""SPEC.md section 6, invariant 4', True),
        ("# (SPEC 2: an interrupt in an idle section", True),
        ("the header's address fields are used (QEMU.md)", True),
        ("(docs/assembler.md#keystone-traps)", False),
        ("see docs/qemu.md and docs/entry.md", False),
    ],
)
def test_outside_citation_pattern(line: str, cites: bool):
    assert bool(outside_citations("f", line)) is cites


def test_no_code_cites_a_path_outside_the_repository():
    found = []
    for name in tracked_files():
        if name.startswith("docs/") or name == "tests/test_docs.py":
            continue
        if name == ".test_durations":  # test ids, among them this file's examples of citations
            continue
        path = ROOT / name
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        found += outside_citations(name, text)
    assert found == []
