"""The build itself: generate, parse, assemble, link, verify, check, and the output bytes.

Loaded only when the whole-build cache entry is missing: importing it loads the assembler,
the linker, capstone and the kernel's Python definitions.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from asm import KeystoneBackend, SharedParse, Unit
from asm.source import parse_file
from kernel import gen
from kernel.layout import LAYOUT
from linker import Image, link, write_elf, write_map
from linker.link import first_pass
from linker.pe import pe_warnings, raise_pe_warnings, write_pe

from .cache import Cache, Roots, below_root, digest, dumps, loads
from .core import Built, code_key
from .paths import ROOT, rel

_private_names = itertools.count()


def kernel_modules(kernel_dir: Path) -> tuple[ModuleType, ModuleType]:
    """The `gen` and `layout` modules of the kernel tree at `kernel_dir`: the checkout's own for
    kernel/, else the copy's Python files (gen.py, layout.py and what they import: abi.py, vectors.py,
    structs.py, events.py), loaded as a package under a private name that is removed from
    sys.modules again, so that the rest of the process keeps seeing the checkout's `kernel`.  A
    copy whose Python files are the checkout's, byte for byte, gets the checkout's modules (they
    are loaded already: the same code makes the same tables)."""
    if kernel_dir.resolve() == (ROOT / "kernel").resolve() or _same_python(kernel_dir):
        return gen, sys.modules["kernel.layout"]
    name = f"_kernel_dir_{next(_private_names)}"
    package = ModuleType(name, f"the kernel definitions in {kernel_dir}")
    package.__path__ = [str(kernel_dir.resolve())]
    package.__package__ = name
    sys.modules[name] = package
    try:
        return (importlib.import_module(f"{name}.gen"),
                importlib.import_module(f"{name}.layout"))  # fmt: skip
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def _same_python(kernel_dir: Path) -> bool:
    """True when `kernel_dir` holds the checkout's kernel/*.py files and no others, each with
    the same bytes."""
    mine = sorted(p.name for p in (ROOT / "kernel").glob("*.py"))
    if sorted(p.name for p in kernel_dir.glob("*.py")) != mine:
        return False
    return all((kernel_dir / n).read_bytes() == (ROOT / "kernel" / n).read_bytes() for n in mine)


def kernel_sources(
    gen_dir: Path, kernel_dir: Path = ROOT / "kernel", generator: ModuleType = gen
) -> list[Path]:
    """Hand-written sources (sorted, so the link order is stable) then the ones `generator`
    (a kernel tree's gen module) writes into `gen_dir`."""
    return sorted(kernel_dir.rglob("*.s")) + generator.generate(gen_dir)


def output_namer(out: Path, kernel_dir: Path):
    """Source names written into the outputs (STT_FILE symbols, map, listing): the same
    whatever --out and --kernel-dir are, so that the same sources give the same bytes."""
    out, kernel_dir = out.resolve(), kernel_dir.resolve()

    @functools.cache
    def name(path: str | Path) -> str:
        p = Path(path).resolve()
        if p.is_relative_to(out):
            return "build/" + str(p.relative_to(out))
        if p.is_relative_to(kernel_dir):
            return "kernel/" + str(p.relative_to(kernel_dir))
        return rel(p)

    return name


def rooted_name(path: Path, roots: Roots) -> str:
    """`path` as cache keys name it: TAG/below for a path under one of `roots` (the same for a
    copy of the tree), else the path itself."""
    found = below_root(path, roots)
    return "/".join(found) if found is not None else str(path)


def load(sources: list[Path], include_dirs: list[Path],
         loaded: Callable[[list[Unit]], None] = lambda units: None,
         cache: Cache | None = None, store_parsed: bool = True,
         roots: Roots | None = None) -> list[Unit]:  # fmt: skip
    """Parse and lower every source into units, each with a `cache_key`: a digest of our code,
    the file's name and bytes and those of everything it read; `loaded` is given each file's
    units as soon as they are made.  With `cache`, a file whose bytes, include directories and
    inputs (includes, .incbin) are those of an earlier parse takes that parse's units from it
    (the "parsed" entries: the inputs' digests, checked here, the units as lowered, and apart
    from them each unit's statements, read only when a pass asks for them); the files parsed
    are stored there with `store_parsed`.  Keys and entries name the files under
    `roots` (tag -> directory, absolute) relative to them, so that a copy of the tree shares
    the entries of the files it did not change.  Raises AsmError."""
    store = cache if cache is not None else Cache(None)
    roots = roots or {}
    digests: dict[Path, str | None] = {}

    def file_digest(path: Path) -> str | None:
        if path not in digests:
            try:
                digests[path] = digest(path.read_bytes())
            except OSError:  # an input of an earlier parse that is gone: not that parse
                digests[path] = None
        return digests[path]

    # Each path's rooted name, made once: the includes of one file are those of many.
    name_of = functools.cache(lambda path: rooted_name(path, roots))

    shared = SharedParse()
    units: list[Unit] = []
    parsed = 0
    dirs = [name_of(d) for d in include_dirs]
    for path in sources:
        name = name_of(path)
        parse_key = digest(code_key(), "parsed", name, *dirs, file_digest(path) or "")
        entry = store.get("parsed", parse_key, roots)
        if entry is not None and inputs_unchanged(entry[0], file_digest):
            inputs, file_units, statements = entry
            for u, data in zip(file_units, statements, strict=True):
                u.join(functools.partial(loads, data, roots) if isinstance(data, bytes)
                       else functools.partial(_given, data))  # fmt: skip
        else:
            src = parse_file(path, include_dirs, None, shared)
            src.labels()  # duplicate labels within a file
            inputs = [(p, file_digest(p)) for p in src.inputs]
            inputs += [(p, None) for p in src.absent]  # must still not be there
            file_units = [Unit(src, section, stmts) for section, stmts in src.sections.items()]
            if store_parsed:
                parts = [u.split() for u in file_units]
                entry = (inputs, [bare for bare, _ in parts], [dumps(st, roots) for _, st in parts])
                store.put("parsed", parse_key, entry, prune=False, roots=roots)
                parsed += 1
        key = digest(code_key(), name, file_digest(path) or "",
                     *(f"{name_of(p)}\n{d}" for p, d in inputs))  # fmt: skip
        for u in file_units:
            u.cache_key = digest(key, u.section)
        loaded(file_units)
        units += file_units
    if parsed:
        store.prune("parsed")
    return units


def read_statements(entry: tuple, roots: Roots | None) -> None:
    """Decode the statements of a "parsed" entry (as Cache.get returned it) now, in place: a
    build prepared ahead (kbuild/warm.py) does so while the user edits, and load() then finds
    them made."""
    statements = entry[2]
    for k, data in enumerate(statements):
        if isinstance(data, bytes):
            statements[k] = loads(data, roots)


def _given(value: Any) -> Any:
    return value


def inputs_unchanged(inputs: list[tuple[Path, str | None]],
                     file_digest: Callable[[Path], str | None]) -> bool:  # fmt: skip
    """True when every input an earlier parse read (path, digest) still has that digest, and
    every place it looked in first (digest None) still holds no file."""
    return all(file_digest(Path(p)) == d for p, d in inputs)


def build_image(sources: list[Path], include_dirs: list[Path], layout=LAYOUT,
                cache: Cache | None = None, store_parsed: bool = True,
                roots: Roots | None = None) -> Image:  # fmt: skip
    """Assemble and link `sources` (not verified yet: see build()); raises AsmError or
    LinkErrors.  `store_parsed` and `roots`: as load() has them."""
    store = cache if cache is not None else Cache(None)
    memo_key = digest(code_key(), "keystone")
    memo = store.get("keystone", memo_key) or {}
    stored = set(memo)
    # Two workers (keystone loading in them while we parse) when most units are new; capstone
    # and the passes after linking are loaded while they assemble.
    with KeystoneBackend(memo=memo, workers=1 if memo else 2, start=True,
                         idle=load_checks) as backend:  # fmt: skip
        place = first_pass(layout)

        def prefetch(file_units: list[Unit]) -> None:  # keystone works while we parse
            work = [(u, *p) for u in file_units if (p := place(u)) is not None]
            backend.prefetch(work)

        units = load(sources, include_dirs, prefetch, store, store_parsed, roots)
        image = link(units, layout, backend, verify=False)
    if set(backend.used) != stored:  # else the entry holds these results already
        store.put("keystone", memo_key, backend.used)
    return image


def load_checks() -> None:
    """Load the passes after linking and capstone (about 25 ms): asked of the keystone
    backend, which calls it while its workers assemble and this process would only wait."""
    import asm.verify  # noqa: F401
    import linker.checks  # noqa: F401
    import linker.listing  # noqa: F401


def _checked(
    cache: Cache, kind: str, empty: type, bound: int | None = None
) -> tuple[str, Any, Any]:
    """The "checked" cache entry `kind`: its key, its value (empty() when there is none) and a
    copy to compare with before storing it again.  A set grown past `bound` members starts
    empty again: the images of the last builds are the ones worth keeping."""
    key = digest(code_key(), kind)
    value = cache.get("checked", key) or empty()
    before = empty(value)
    if bound is not None and len(value) > bound:
        value = empty()
    return key, value, before


def build(out: Path, kernel_dir: Path, cache: Cache) -> Built:
    """Generate into out/gen, build, check; the outputs' bytes (nothing is written to `out`
    but the generated sources).  Raises AsmError or LinkErrors for errors in the sources."""
    out, kernel_dir = out.resolve(), kernel_dir.resolve()  # the roots below name files
    gen_dir = out / "gen"
    # Parses are worth storing for a build that comes again: from the second into `out` on,
    # and from the first on into a cache that builds into other directories share (copies of
    # the tree with an edit, as the tests' mutant kernels are, then parse only what they
    # changed).  Pickling every file's units costs about 0.1 s; a first build into a new
    # directory with its own cache would store them for nothing, unless its caller says it
    # will build again (Cache.again: kbuild/warm.py).
    shared = cache.root is not None and cache.root.resolve() != out / "cache"
    store_parsed = gen_dir.is_dir() or shared or cache.again
    generator, layout = kernel_modules(kernel_dir)
    sources = kernel_sources(gen_dir, kernel_dir, generator)
    image = build_image(sources, [gen_dir, kernel_dir / "include"], layout.LAYOUT, cache,
                        store_parsed, {"kernel": kernel_dir, "gen": gen_dir})  # fmt: skip
    from asm.verify import Passed
    from linker.checks import BackgroundVerify, check_noinstr
    from linker.listing import write_listing

    name = output_namer(out, kernel_dir)
    checked_key, verified, verified_before = _checked(cache, "verified", set)
    listing_key, listed, listed_before = _checked(cache, "listing", dict)
    lines_key, lines, lines_before = _checked(cache, "lines", dict)
    noinstr_key, noinstr_passed, noinstr_before = _checked(cache, "noinstr", set, bound=16)
    # The digests of PE files pefile read without a warning (its verdict is a function of the
    # bytes): an edit that changes no code (a comment) makes the same file (14 ms to parse).
    pe_key, pe_passed, pe_before = _checked(cache, "pe", set, bound=16)
    # Capstone verification runs in a forked child, with the listing and the PE file's check,
    # while this process writes the ELF file and checks noinstr; verification's errors come
    # first, as when it ran before the other passes.

    def side() -> tuple[bytes, list[str], str, dict]:
        efi = write_pe(image, layout.PE_PARAMS)
        warnings = [] if digest(efi) in pe_passed else pe_warnings(efi)
        return efi, warnings, write_listing(image, name, listed), listed

    # Instructions written alike (the same bytes, text and values) are decoded once per
    # process: a memo kept only for this build (stored, its 15,000 keys cost an edit's build
    # more to read and write than they save), or kept in memory by a builder (kbuild/warm.py).
    insns = cache.verdicts if cache.verdicts is not None else Passed()
    with BackgroundVerify(image, verified, side, insns) as verification:
        verification.start()
        try:
            elf = write_elf(image, name, lines=lines)
            check_noinstr(image, noinstr_passed)
            later: Exception | None = None
        except Exception as e:
            later = e
        efi, warnings, listing, listed = verification.finish()
        raise_pe_warnings(warnings)
        pe_passed.add(digest(efi))
        if later is not None:
            raise later
    # Each entry is stored again only when it changed (an edit that moves no code changes
    # none of them).
    verified = {key for u in image.units() if u.has_instructions
                for key in (u.result_key(), u.stable_key())} & verified  # fmt: skip
    for key, value, before in ((checked_key, verified, verified_before),
                               (listing_key, listed, listed_before),
                               (lines_key, lines, lines_before),
                               (noinstr_key, noinstr_passed, noinstr_before),
                               (pe_key, pe_passed, pe_before)):  # fmt: skip
        if value != before:
            cache.put("checked", key, value)
    files = {
        "kernel.elf": elf,
        "kernel.map": write_map(image, name).encode(),
        "kernel.lst": listing.encode(),
        "BOOTX64.EFI": efi,
    }
    generated = {p.name: p.read_bytes() for p in sorted(gen_dir.iterdir())
                 if p.is_file() and not p.name.endswith(".tmp")}  # fmt: skip
    summary = [f"  {s.spec.name:<12} vma {s.vma:#018x} lma {s.lma:#010x} size {s.size:#x}"
               for s in image.sections]  # fmt: skip
    summary.append(f"  {len(sources)} sources, {len(image.symbols)} symbols")
    if cache.retained is not None:
        cache.retained.append(image)
    return Built(files, generated, summary)
