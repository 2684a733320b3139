"""A Timeline (tools/tracemodel.py) as a picture: CPUs as lanes, each entry a box coloured by
the path it took, RCU watching as a band under each lane, the task each CPU runs shaded
behind, reschedule IPIs as arrows from the CPU that sent them to the one that took them.
matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

import io
from typing import Any

from tools.tracemodel import Timeline

COLOURS = {
    "user": ("#4c72b0", "from user mode"),
    "kernel": ("#55a868", "from the kernel, RCU watching"),
    "idle": ("#dd8452", "from an RCU idle section"),
    "nmi": ("#c44e52", "NMI"),
}
WATCHING = ("#8fd19e", "RCU watching")
NOT_WATCHING = ("#d9d9d9", "RCU not watching (EQS)")
IPI_COLOUR = "#6a3d9a"
MIN_BOX = 1 / 1500  # of the time span: an entry narrower than this is drawn this wide


def draw_png(timeline: Timeline, metadata: dict[str, Any]) -> bytes:
    """The picture as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    cpus = sorted({k.cpu for k in timeline.track_names})
    lane = {cpu: i for i, cpu in enumerate(cpus)}
    t0 = timeline.start
    span = max(1, timeline.end - t0)
    per_insn = metadata.get("ticks_per_instruction")
    scale = 1e6 * (per_insn or 1)  # ticks per unit of the x axis: millions of instructions or ticks

    def x(ts: float) -> float:
        return (ts - t0) / scale

    height = 1.8 + 1.1 * len(cpus)
    fig, ax = plt.subplots(figsize=(12, height), dpi=100)
    for s in timeline.slices:  # the task each CPU runs, behind everything
        if s.category != "running":
            continue
        y = lane[s.track.cpu]
        idle = "(idle)" in s.name
        ax.broken_barh([(x(s.start), x(s.end) - x(s.start))], (y - 0.42, 0.84),
                       facecolors="#f4f4f4" if idle else "#e6eef7", edgecolors="none", zorder=0)  # fmt: skip
        if s.duration > span / 12:
            ax.text(x(s.start) + span / scale / 400, y - 0.36, s.name, fontsize=7,
                    color="#555555", va="top", zorder=1, clip_on=True)  # fmt: skip
    # An entry is drawn only while its task runs: a task that sleeps or is preempted inside
    # one leaves its CPU to others meanwhile.
    runs: dict[tuple[int, int | None], list[tuple[int, int]]] = {}
    for s in timeline.slices:
        if s.category == "running":
            runs.setdefault((s.track.cpu, s.args.get("task")), []).append((s.start, s.end))  # type: ignore[arg-type]
    boxes: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for s in timeline.slices:
        if s.category not in ("entry", "nmi") or s.path is None:
            continue
        for a, b in runs.get((s.track.cpu, s.track.task), [(s.start, s.end)]):
            start, end = max(a, s.start), min(b, s.end)
            if end >= start:
                width = max(end - start, span * MIN_BOX)
                boxes.setdefault((lane[s.track.cpu], s.path), []).append((x(start), width / scale))
    for (y, path), bars in boxes.items():
        ax.broken_barh(bars, (y - 0.2, 0.4), facecolors=COLOURS[path][0], edgecolors="none",
                       zorder=3 if path == "nmi" else 2)  # fmt: skip
    watching: dict[int, list[tuple[int, int]]] = {}
    for c in timeline.counters:
        if c.name == "RCU watching":
            watching.setdefault(c.cpu, []).append((c.ts, c.value))
    for cpu, points in watching.items():
        y = lane[cpu]
        ends = [ts for ts, _ in points[1:]] + [timeline.end]
        for colour, want in ((WATCHING[0], 1), (NOT_WATCHING[0], 0)):
            bars = [(x(ts), (end - ts) / scale) for (ts, v), end in zip(points, ends, strict=True)
                    if v == want and end > ts]  # fmt: skip
            ax.broken_barh(bars, (y + 0.26, 0.1), facecolors=colour, edgecolors="none", zorder=2)
    for f in timeline.flows:
        ax.annotate("", xy=(x(f.target.start), lane[f.target.track.cpu] - 0.2),
                    xytext=(x(f.source.end), lane[f.source.track.cpu] + 0.2),
                    arrowprops={"arrowstyle": "->", "color": IPI_COLOUR, "lw": 0.8,
                                "shrinkA": 0, "shrinkB": 0}, zorder=4)  # fmt: skip
    ax.set_yticks(range(len(cpus)), [f"CPU {cpu}" for cpu in cpus])
    ax.set_ylim(len(cpus) - 0.5, -0.5)
    ax.set_xlim(0, span / scale)
    unit = "instructions (-icount)" if per_insn else "TSC ticks (the host's clock)"
    ax.set_xlabel(f"millions of {unit} since the first record")
    cmdline = metadata.get("cmdline") or "(the demo)"
    ax.set_title(f"condrcu: {cmdline} on {len(cpus)} CPUs, {len(timeline.flows)} reschedule "
                 "IPIs", fontsize=10)  # fmt: skip
    handles = [Patch(color=c, label=f"entry {label}") for c, label in COLOURS.values()]
    handles += [Patch(color=WATCHING[0], label=WATCHING[1]),
                Patch(color=NOT_WATCHING[0], label=NOT_WATCHING[1]),
                Line2D([], [], color=IPI_COLOUR, lw=0.8, marker=">", label="reschedule IPI")]  # fmt: skip
    legend = 0.5  # inches at the bottom for the legend's two rows
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, legend / height, 1, 1))
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()
