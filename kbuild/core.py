"""The kernel build as a library: `build_kernel(out, kernel_dir, cache=True) -> BuildResult`.

Outputs: kernel.elf (bootable with `qemu-system-x86_64 -kernel`), kernel.map (symbols by
address), kernel.lst (capstone listing), and the generated sources in gen/.  Every output is
written to a temporary name and renamed; a failed build -- an error in the sources, an OSError,
an internal error or Ctrl-C -- removes the outputs of earlier builds and its temporaries, so
nothing stale or half-written is left to boot, and says why in one line (no traceback).  The
linked image must pass capstone verification and objtool's noinstr check (linker/checks.py).

With the cache (out/cache, kbuild/cache.py), a build whose inputs are all unchanged -- every
file of the kernel tree, our asm/, linker/ and kbuild/ code, the keystone and capstone versions,
the Python version -- takes its outputs from the entry of the last such build, before loading
the assembler, keystone or capstone; the outputs are the same bytes either way.  Builds into the
same `out` take turns (a lock file, out/.build.lock).
"""

from __future__ import annotations

import fcntl
import functools
import gc
import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .cache import Cache, digest
from .paths import ROOT, rel

OUTPUTS = ("kernel.elf", "kernel.map", "kernel.lst", "BOOTX64.EFI")
CODE = ("asm", "linker", "kbuild")  # our code that decides what the outputs are
# The tools whose versions decide the outputs, as (module, distribution): pefile's too, since
# its verdicts on the PE file are cached.
TOOLS = (("keystone", "keystone_engine"), ("capstone", "capstone"), ("pefile", "pefile"))
KEY_FORMAT = b"condrcu-build-1"


@dataclass
class BuildResult:
    """How a build went: `status` 0 built, 1 failed, 130 interrupted; `messages` for stderr in
    order (errors, then `build failed`; or warnings); `summary` the sections and counts."""

    status: int
    messages: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    cached: bool = False  # the outputs came whole from the cache
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass
class Built:
    """What a successful build made (a whole-build cache entry): the outputs' bytes, the
    generated sources' bytes, the summary."""

    files: dict[str, bytes]  # kernel.elf, kernel.map, kernel.lst, BOOTX64.EFI
    generated: dict[str, bytes]  # gen/NAME
    summary: list[str]


def build_kernel(out: Path = ROOT / "build", kernel_dir: Path = ROOT / "kernel",
                 cache: bool | Path | Cache = True) -> BuildResult:  # fmt: skip
    """Build the kernel tree at `kernel_dir` into `out`; never raises for a failed build (the
    result says why, and nothing of it or of earlier builds is left in `out`).  `cache`: True
    for out/cache, False for none, the cache directory to use (builds into different
    directories may share one), or a Cache (kbuild/warm.py's, with entries preloaded)."""
    problem = check_dirs(out, kernel_dir)
    if problem is not None:  # nothing was written, so there is nothing to clean up
        return BuildResult(1, [problem, "build failed"])
    start = time.perf_counter()
    collecting = gc.isenabled()
    gc.disable()  # the build's objects live until it ends: cycle collection is pure cost (0.09 s)
    try:
        return _build(out, kernel_dir, cache, start)
    finally:
        if collecting:
            gc.enable()


def _build(out: Path, kernel_dir: Path, cache: bool | Path | Cache, start: float) -> BuildResult:
    if isinstance(cache, Cache):
        store, root = cache, cache.root
    else:
        root = cache if isinstance(cache, Path) else out / "cache" if cache else None
        store = Cache(root)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with _locked(out):
            key = build_key(kernel_dir, out) if root is not None else None
            built = store.get("build", key) if key else None
            cached = built is not None
            if built is None:
                from . import full  # the assembler, the linker, capstone: only when needed

                built = full.build(out, kernel_dir, store)
                if key:
                    store.put("build", key, built)
            else:
                write_generated(out / "gen", built.generated)
            write_outputs(out, built.files)
    except (Exception, KeyboardInterrupt) as e:  # every failure cleans up and says why
        return _failed(out, e, store)
    summary = [*built.summary]
    summary[-1] += f", {time.perf_counter() - start:.2f} s" + (" (cached)" if cached else "")
    return BuildResult(0, store.warnings, summary, cached, time.perf_counter() - start)


def build_key(kernel_dir: Path, out: Path) -> str:
    """The SHA-256 of every input of a build of `kernel_dir`: our code and tools (code_key),
    and every file of the tree (but `out`, should it lie inside), each name with its bytes."""
    parts: list[bytes | str] = [code_key()]
    for p in _tree(kernel_dir, out):
        parts += [str(p.relative_to(kernel_dir)), p.read_bytes()]
    return digest(*parts)


@functools.cache
def code_key() -> str:
    """The SHA-256 of what decides the outputs besides the kernel tree: our code (asm/,
    linker/, kbuild/), the keystone, capstone and pefile versions, the Python version.  Every
    cache key includes it."""
    parts: list[bytes | str] = [KEY_FORMAT, sys.version]
    for module, dist in TOOLS:
        parts += [module, tool_version(module, dist)]
    for d in CODE:
        for p in sorted((ROOT / d).glob("*.py")):
            parts += [f"{d}/{p.name}", p.read_bytes()]
    return digest(*parts)


def tool_version(module: str, dist: str) -> str:
    """The installed distribution of `module` (its dist-info's name), found without importing
    it; else where the module is."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return "missing"
    origin = Path(spec.origin)  # a package's __init__.py, or a module's own file
    site = origin.parent.parent if origin.name == "__init__.py" else origin.parent
    infos = sorted(p.name for p in site.glob(f"{dist}-*.dist-info"))
    return ",".join(infos) or spec.origin


def _tree(top: Path, skip: Path) -> list[Path]:
    """Every file under `top` but Python's bytecode caches and what is under `skip`, sorted."""
    found = []
    skip = skip.resolve()
    for d, dirs, files in os.walk(top):
        dirs[:] = sorted(x for x in dirs
                         if x != "__pycache__" and Path(d, x).resolve() != skip)  # fmt: skip
        found += [Path(d, f) for f in files if not f.endswith((".pyc", ".tmp"))]
    return sorted(found)


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Builds into the same directory one at a time."""
    with open(out / ".build.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def temporary(path: Path) -> Path:
    """Where `path` is written before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp")


def write_outputs(out: Path, files: dict[str, bytes]) -> None:
    """Write every output that differs from what is there to its temporary name first, then
    rename them all into place, so a failure while writing leaves no output half-written (the
    caller cleans up)."""
    changed = {name: data for name, data in files.items() if not _holds(out / name, data)}
    for name, data in changed.items():
        temporary(out / name).write_bytes(data)
    for name in changed:
        os.replace(temporary(out / name), out / name)


def write_generated(gen_dir: Path, files: dict[str, bytes]) -> None:
    """The generated sources of a cached build, as the generator would write them."""
    gen_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = gen_dir / name
        if not _holds(path, data):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def remove_outputs(out: Path, generated_too: bool) -> list[str]:
    """After a failed build: remove the outputs of earlier builds, this build's temporaries and,
    with `generated_too`, the generated sources (they may be an earlier build's or half
    written).  Returns what could not be removed."""
    left: list[str] = []
    if not out.is_dir():  # never created (an --out below a file): nothing of ours is there
        return left
    paths = [p for name in OUTPUTS for p in (out / name, temporary(out / name))]
    gen_dir = out / "gen"
    if gen_dir.is_dir():
        paths += sorted(gen_dir.glob("*.tmp"))
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            left.append(f"{rel(path)} ({e.strerror or e})")
    if generated_too and gen_dir.is_dir():
        import shutil  # a failed build's: not loaded by every build (nor traceback, below)

        shutil.rmtree(gen_dir, onerror=lambda _f, p, e: left.append(f"{rel(p)} ({e[1]})"))
    return left


def check_dirs(out: Path, kernel_dir: Path) -> str | None:
    """One line saying why --out or --kernel-dir cannot be used, or None: the output directory
    may be missing (it is created) but not be something else; the source tree must exist."""
    if out.exists() and not out.is_dir():
        return f"error: --out {rel(out)}: not a directory"
    if not kernel_dir.exists():
        return f"error: --kernel-dir {rel(kernel_dir)}: no such directory"
    if not kernel_dir.is_dir():
        return f"error: --kernel-dir {rel(kernel_dir)}: not a directory"
    missing = [f for f in ("gen.py", "layout.py") if not (kernel_dir / f).is_file()]
    if missing:
        return f"error: --kernel-dir {rel(kernel_dir)}: no {missing[0]} (not a kernel tree)"
    return None


def describe(exc: BaseException) -> str:
    """One line for a failure that is not an error in the sources: the OS's reason for an
    OSError, else an internal error with the place it was raised."""
    if isinstance(exc, KeyboardInterrupt):
        return "error: interrupted"
    if isinstance(exc, OSError):
        where = f"{rel(str(exc.filename))}: " if exc.filename else ""
        return f"error: {where}{exc.strerror or exc}"
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    place = (
        f" at {rel(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}()"
        if frames
        else ""
    )
    return f"internal error: {type(exc).__name__}: {exc}{place}"


def _in_sources(exc: BaseException) -> bool:
    """An error in the sources (AsmError, LinkErrors, a PE file pefile warns about): only
    possible once the build is loaded."""
    if "asm.errors" not in sys.modules:
        return False
    from asm.errors import AsmError
    from linker.link import LinkErrors
    from linker.pe import PeError

    return isinstance(exc, (AsmError, LinkErrors, PeError))


def _failed(out: Path, exc: BaseException, store: Cache) -> BuildResult:
    """Report a failed build and leave nothing of it or of earlier builds behind."""
    if _in_sources(exc):
        # An error in the sources: the generated files are this build's; keep them to look at.
        message, generated_too = str(exc), False
    else:
        message, generated_too = describe(exc), True
    status = 130 if isinstance(exc, KeyboardInterrupt) else 1
    messages = [*store.warnings, message]
    try:
        left = remove_outputs(out, generated_too)
    except Exception as e:  # the report must still come out
        left = [describe(e)]
    if left:
        messages.append(f"error: could not remove {', '.join(left)}")
    messages.append("build failed")
    return BuildResult(status, messages)
