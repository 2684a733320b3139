"""Symbol resolution, placement and the fixpoint on sizes.

Instruction sizes depend on symbol values (rel8 or rel32, imm32 or imm64) and symbol values on
sizes, so placement is repeated until a pass assembles every unit with exactly the addresses it
produces (each pass places the labels at their last offsets from their units' new starts, so
that, when no size changes, the second pass is the last).  The linker knows units only through their interface (align, labels, references,
text/absorb/finish); the assembling itself is a callable it is given, and verifying the
instructions is a pass over the linked image (linker/checks.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from asm.errors import AsmError, Loc
from asm.unit import Resolve, Unit

from .layout import Layout, OutputSection

MAX_PASSES = 10

# (unit, base, resolve) for every unit: fills in the units' sizes and offsets.
AssembleFn = Callable[[list[tuple[Unit, int, Resolve]]], None]


class LinkErrors(Exception):
    """One or more errors, each `path:line: error: ...`; all are reported, not just the first."""

    def __init__(self, errors: Sequence[AsmError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)


@dataclass
class Symbol:
    name: str
    value: int
    size: int
    section: str
    kind: str  # "function", "object" or "notype"
    is_global: bool
    file: str


@dataclass
class PlacedSection:
    spec: OutputSection
    vma: int
    lma: int
    size: int
    data: bytes  # empty for nobits
    units: list[Unit] = field(default_factory=list)


@dataclass
class Image:
    """The linked program: sections with bytes and addresses, symbols, entry point, and for each
    unit (in placement order, as `units()` gives them) how its names resolve."""

    layout: Layout
    sections: list[PlacedSection]
    symbols: list[Symbol]
    entry: int
    resolvers: list[Resolve] = field(default_factory=list)

    def symbol(self, name: str) -> Symbol:
        for s in self.symbols:
            if s.name == name:
                return s
        raise KeyError(name)

    def units(self) -> list[Unit]:
        """Every unit, in placement order."""
        return [u for sec in self.sections for u in sec.units]

    def locate(self, address: int) -> Loc | None:
        """The source line of the statement whose bytes hold `address` (None: padding between
        units, generated data, or no section there)."""
        for sec in self.sections:
            if not sec.vma <= address < sec.vma + sec.size:
                continue
            for u in sec.units:
                if u.base <= address < u.base + u.size:
                    return u.locate(address - u.base)
        return None


def _hidden(name: str) -> bool:
    return name.startswith((".L", "__k"))


class Linker:
    def __init__(self, units: list[Unit], layout: Layout, assemble: AssembleFn) -> None:
        self.layout, self.assemble = layout, assemble
        self._generated_size: dict[str, int] = {}  # generated sections' sizes, last pass
        self.by_section: dict[str, list[Unit]] = {s.name: [] for s in layout.sections}
        errors = []
        for u in units:
            out = layout.output_for(u.section)
            if out is None:
                errors.append(AsmError(u.loc, f"section '{u.section}' is not placed by the layout"))
                continue
            if out.nobits:
                loc = u.data_loc()
                if loc is not None:
                    errors.append(AsmError(loc, f"'{u.section}' holds no data (nobits): "
                                           "only labels, .zero and .balign belong there"))  # fmt: skip
            self.by_section[out.name].append(u)
        # Input-pattern order first (a header goes first), then file order.
        for spec in layout.sections:
            self.by_section[spec.name].sort(key=lambda u, s=spec: _pattern_index(s, u.section))
        # Units are known by their position in this list (placement order) everywhere below,
        # their files by number (labels are a file's: (file number, name) keys their values).
        self.units = [u for us in self.by_section.values() for u in us]
        files: dict[object, int] = {}
        self.file_no = [files.setdefault(u.path, len(files)) for u in self.units]
        self.section_units: dict[str, range] = {}
        first = 0
        for name, us in self.by_section.items():
            self.section_units[name] = range(first, first + len(us))
            first += len(us)
        self._check_symbols(errors)
        if errors:
            raise LinkErrors(errors)

    def _check_symbols(self, errors: list[AsmError]) -> None:
        self.file_labels: dict[object, set[str]] = {}
        self.global_def: dict[str, tuple[int, Loc]] = {}  # a global label's file number, place
        label_locs: dict[tuple[object, str], Loc] = {}
        for i, u in enumerate(self.units):
            table = self.file_labels.setdefault(u.path, set())
            for name, loc in u.label_locs():
                key = (u.path, name)
                if key in label_locs:
                    errors.append(AsmError(loc, f"symbol '{name}' is already defined "
                                           f"at {label_locs[key]}"))  # fmt: skip
                    continue
                label_locs[key] = loc
                table.add(name)
                if u.is_global(name):
                    if name in self.global_def:
                        other = self.global_def[name][1]
                        errors.append(AsmError(loc, f"duplicate symbol '{name}' "
                                               f"(also defined at {other})"))  # fmt: skip
                    else:
                        self.global_def[name] = (self.file_no[i], loc)
        linker_names = set(linker_symbols(self.layout, self._place([0] * len(self.units))[1]))
        for u in self.units:
            labels = self.file_labels[u.path]
            undefined = {name for name in u.externals() if name not in labels
                         and name not in self.global_def and name not in linker_names}  # fmt: skip
            if undefined:  # every use of each, in source order
                errors += [AsmError(loc, f"undefined symbol '{name}'")
                           for name, loc in u.references() if name in undefined]  # fmt: skip

    # -- placement -----------------------------------------------------------------------------

    def _place(self, sizes: list[int]) -> tuple[list[int], dict[str, tuple[int, int, int]]]:
        """Unit bases (by position in self.units) and output section (vma, lma, size) for the
        given unit sizes."""
        bases: list[int] = []
        spans: dict[str, tuple[int, int, int]] = {}
        cursor = self.layout.load_base
        units = iter(zip(self.units, sizes))
        for spec in self.layout.sections:
            lma = spec.lma if spec.lma is not None else _align(cursor, spec.align)
            vma = spec.vma if spec.vma is not None else lma + spec.vma_offset
            pos = vma
            for u, size in itertools.islice(units, len(self.by_section[spec.name])):
                pos = _align(pos, max(u.align, spec.unit_align))
                bases.append(pos)
                pos += size
            pos = _align(pos, spec.unit_align)
            if spec.generate is not None:
                pos += self._generated_size.get(spec.name, 0)
            spans[spec.name] = (vma, lma, pos - vma)
            cursor = lma + (pos - vma)
        return bases, spans

    def _resolver(self, i: int, values: dict[tuple[int, str], int], linker: dict[str, int]):
        """Names as unit i sees them: its file's labels, its file's constants, global labels,
        the linker's symbols."""
        u, file = self.units[i], self.file_no[i]

        def resolve(name: str) -> int | None:
            if (file, name) in values:
                return values[(file, name)]
            value = u.constant(name)
            if value is not None:
                return value
            g = self.global_def.get(name)
            if g is not None:
                return values.get((g[0], name))
            return linker.get(name)

        return resolve

    def link(self) -> Image:
        sizes = [0] * len(self.units)
        self._generated_size = {}
        for _ in range(MAX_PASSES):
            bases, spans = self._place(sizes)
            linker = linker_symbols(self.layout, spans)
            # Each label at its last-pass offset from where its unit starts now: exact when no
            # size changed (the usual case), so that pass is the last, not the one after.
            values: dict[tuple[int, str], int] = {
                (f, n): base + off
                for f, u, base in zip(self.file_no, self.units, bases)
                for n, off in u.label_offsets().items()
            }
            work = [(u, base, self._resolver(i, values, linker))
                    for i, (u, base) in enumerate(zip(self.units, bases))]  # fmt: skip
            self.assemble(work)
            new_sizes = [u.size for u in self.units]
            new_values = {(f, n): u.base + off for f, u in zip(self.file_no, self.units)
                          for n, off in u.label_offsets().items()}  # fmt: skip
            symbols = self._symbols(new_values, spans)
            gen = {s.name: len(s.generate(symbols)) for s in self.layout.sections if s.generate}
            if new_sizes == sizes and new_values == values and gen == self._generated_size:
                return self._finish(spans, linker, values, symbols)
            sizes, self._generated_size = new_sizes, gen
        raise LinkErrors([AsmError(None, f"layout did not settle after {MAX_PASSES} passes "
                                   "(instruction sizes keep changing)")])  # fmt: skip

    def _symbols(self, values, spans) -> list[Symbol]:
        """The symbol table: labels (not .L or reserved), sized by .size, else up to the next
        label or the end of the label's unit (not the padding after it: OutputSection.unit_align)."""
        out: list[Symbol] = []
        for spec in self.layout.sections:
            entries = []
            for i in self.section_units[spec.name]:
                u, file = self.units[i], self.file_no[i]
                marks = u.size_marks(lambda n, f=file: values.get((f, n)))
                for name, off in u.label_offsets().items():
                    if _hidden(name):
                        continue
                    kind = u.symbol_kind(name) or ("function" if spec.perm == "rx" else "object")
                    entries.append([u.base + off, name, marks.get(name), kind,
                                    u.is_global(name), str(u.path), u.base + u.size])  # fmt: skip
            entries.sort(key=lambda e: (e[0], e[1]))
            end = spans[spec.name][0] + spans[spec.name][2]
            for k, (value, name, size, kind, glob, file, unit_end) in enumerate(entries):
                if size is None:
                    nxt = next((e[0] for e in entries[k + 1 :] if e[0] > value), end)
                    size = max(0, min(nxt, unit_end) - value)  # early passes: maybe inconsistent
                out.append(Symbol(name, value, size, spec.name, kind, glob, file))
        return out

    def _finish(self, spans, linker, values, symbols) -> Image:
        placed = []
        errors: list[AsmError] = []
        resolvers: list[Resolve] = []
        for spec in self.layout.sections:
            vma, lma, size = spans[spec.name]
            fill = 0xCC if spec.perm == "rx" else 0
            # A nobits section's bytes are never kept: not made (the event log's are 8 MiB).
            bare = spec.nobits and spec.generate is None and not spec.sort_entries
            data = bytearray() if bare else bytearray([fill]) * size
            for i in self.section_units[spec.name]:
                u = self.units[i]
                resolve = self._resolver(i, values, linker)
                try:
                    final = u.finish(resolve)
                except AsmError as e:
                    errors.append(e)
                    continue
                resolvers.append(resolve)
                if not bare:
                    data[u.base - vma : u.base - vma + u.size] = final
            if spec.generate is not None:
                gen = spec.generate(symbols)
                data[size - len(gen) :] = gen
            if spec.sort_entries:
                if size % 16:
                    errors.append(AsmError(None, f"{spec.name}: size {size} is not a multiple "
                                           "of 16-byte entries"))  # fmt: skip
                entries = sorted(
                    (bytes(data[i : i + 16]) for i in range(0, size, 16)),
                    key=lambda e: int.from_bytes(e[:8], "little"),
                )
                data = bytearray(b"".join(entries))
            placed.append(PlacedSection(spec, vma, lma, size, b"" if spec.nobits else bytes(data),
                                        self.by_section[spec.name]))  # fmt: skip
        if errors:
            raise LinkErrors(errors)
        self._check_overlaps(placed)
        try:
            entry = next(s.value for s in symbols if s.name == self.layout.entry)
        except StopIteration:
            raise LinkErrors(
                [AsmError(None, f"entry symbol '{self.layout.entry}' is not defined")]
            ) from None
        return Image(self.layout, placed, symbols, entry, resolvers)

    def _check_overlaps(self, placed: list[PlacedSection]) -> None:
        errors = []
        for i, a in enumerate(placed):
            for b in placed[i + 1 :]:
                if not a.size or not b.size:
                    continue
                for kind, x, y in (("load", a.lma, b.lma), ("virtual", a.vma, b.vma)):
                    if x < y + b.size and y < x + a.size:
                        errors.append(AsmError(None, f"sections {a.spec.name} [{x:#x}, "
                                               f"{x + a.size:#x}) and {b.spec.name} [{y:#x}, "
                                               f"{y + b.size:#x}) overlap ({kind} addresses)"))  # fmt: skip
        if errors:
            raise LinkErrors(errors)


def linker_symbols(layout: Layout, spans: dict[str, tuple[int, int, int]]) -> dict[str, int]:
    """The symbols the linker defines for output sections at `spans` (vma, lma, size)."""
    syms: dict[str, int] = {}
    progbits_end = layout.load_base
    end = layout.load_base
    for spec in layout.sections:
        vma, lma, size = spans[spec.name]
        syms[f"__start_{spec.symbol_stem}"] = vma
        syms[f"__stop_{spec.symbol_stem}"] = vma + size
        syms[f"__lma_start_{spec.symbol_stem}"] = lma
        if not spec.nobits:
            progbits_end = max(progbits_end, lma + size)
        end = max(end, lma + size)
    syms["__image_lma_start"] = layout.load_base
    syms["__image_lma_end"] = progbits_end
    syms["__image_lma_bss_end"] = end
    return syms


def first_pass(layout: Layout) -> Callable[[Unit], tuple[int, Resolve] | None]:
    """Where the fixpoint's first pass (every size still 0) places a unit and how its names
    resolve there, known before any unit is read: a guess of its keystone input that lets
    assembling start while the sources are still being parsed (KeystoneBackend.prefetch).
    None for a unit the layout does not place."""
    spans, cursor = {}, layout.load_base
    for spec in layout.sections:
        lma = spec.lma if spec.lma is not None else _align(cursor, spec.align)
        vma = spec.vma if spec.vma is not None else lma + spec.vma_offset
        spans[spec.name], cursor = (vma, lma, 0), lma
    syms = linker_symbols(layout, spans)

    def place(u: Unit) -> tuple[int, Resolve] | None:
        spec = layout.output_for(u.section)
        if spec is None:
            return None

        def resolve(name: str) -> int | None:
            value = u.constant(name)
            return value if value is not None else syms.get(name)

        return _align(spans[spec.name][0], max(u.align, spec.unit_align)), resolve

    return place


def _pattern_index(spec: OutputSection, name: str) -> int:
    return next(
        i for i, pat in enumerate(spec.inputs) if OutputSection(spec.name, (pat,), "r").takes(name)
    )


def _align(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


def link(units: list[Unit], layout: Layout, assemble: AssembleFn, verify: bool = True) -> Image:
    """Place, resolve and assemble `units` per `layout`, then (with `verify`) run the capstone
    verification pass on the image; raises LinkErrors listing every error."""
    image = Linker(units, layout, assemble).link()
    if verify:
        from .checks import verify_image

        verify_image(image)
    return image
