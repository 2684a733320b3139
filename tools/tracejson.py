"""A Timeline (tools/tracemodel.py) as Chrome's trace-event JSON, which Perfetto's UI and
chrome://tracing open, and the checker the tests run on such a file.

Tracks: each CPU is a process (pid = CPU + 1) whose first thread is the task it runs and whose
other threads are its tasks; its counters are process counters.  Slices are "X" events, calls
"i" events, counters "C", each reschedule IPI an "s"/"f" flow pair, names "M" events.  The
flow's "s" binds to the slice open at its time (the sender's mark), its "f", which has no
binding point "e", to the next slice that begins on its thread (the receiving entry), as
Perfetto's importer and chrome://tracing bind them.  One microsecond of the file is one TSC tick (under
`-icount shift=0` one instruction), counted from the first record; otherData says so.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tools.tracemodel import Timeline, TrackKey

TIME_UNIT = "1 us of this file's ts and dur = 1 TSC tick of the guest"
TID_STRIDE = 100000


def pid_of(cpu: int) -> int:
    return cpu + 1


def tid_of(key: TrackKey) -> int:
    """The CPU's own track is its process's main thread; a task's is one more than its id."""
    base = pid_of(key.cpu) * TID_STRIDE
    return base if key.task is None else base + 1 + key.task


def to_json(timeline: Timeline, metadata: dict[str, Any]) -> dict[str, Any]:
    """The trace-event document: {"traceEvents": [...], "otherData": metadata + unit}."""
    t0 = timeline.start
    meta: list[dict[str, Any]] = []
    for cpu in sorted({k.cpu for k in timeline.track_names}):
        pid = pid_of(cpu)
        meta.append({"ph": "M", "name": "process_name", "pid": pid, "tid": pid * TID_STRIDE,
                     "args": {"name": f"CPU {cpu}"}})  # fmt: skip
        meta.append({"ph": "M", "name": "process_sort_index", "pid": pid,
                     "tid": pid * TID_STRIDE, "args": {"sort_index": cpu}})  # fmt: skip
    for key, name in sorted(timeline.track_names.items(), key=lambda kv: kv[0].order):
        common = {"ph": "M", "pid": pid_of(key.cpu), "tid": tid_of(key)}
        meta.append({**common, "name": "thread_name", "args": {"name": name}})
        order = -1 if key.task is None else key.task
        meta.append({**common, "name": "thread_sort_index", "args": {"sort_index": order}})
    events: list[dict[str, Any]] = []
    for s in timeline.slices:
        args = dict(s.args)
        if s.path is not None:
            args["path"] = s.path
        if s.truncated is not None:
            args["truncated"] = s.truncated
        events.append({"ph": "X", "name": s.name, "cat": s.category, "pid": pid_of(s.track.cpu),
                       "tid": tid_of(s.track), "ts": s.start - t0, "dur": s.duration,
                       "args": args})  # fmt: skip
    for i in timeline.instants:
        events.append({"ph": "i", "s": "t", "name": i.name, "cat": "call",
                       "pid": pid_of(i.track.cpu), "tid": tid_of(i.track), "ts": i.ts - t0,
                       "args": i.args})  # fmt: skip
    for c in timeline.counters:
        pid = pid_of(c.cpu)
        events.append({"ph": "C", "name": c.name, "pid": pid, "tid": pid * TID_STRIDE,
                       "ts": c.ts - t0, "args": {"value": c.value}})  # fmt: skip
    for f in timeline.flows:
        assert f.source.bind is not None and f.target.bind is not None
        for ph, s in (("s", f.source), ("f", f.target)):
            event = {"ph": ph, "id": f.ident, "name": "resched IPI", "cat": "ipi",
                     "pid": pid_of(s.track.cpu), "tid": tid_of(s.track), "ts": s.bind - t0}  # fmt: skip
            events.append(event)
    # Parents before children: by time, then the longest first.
    events.sort(key=lambda e: (e["ts"], -e.get("dur", 0)))
    other = {"time_unit": TIME_UNIT, "tsc_base": t0,
             "truncated_slices": sum(1 for s in timeline.slices if s.truncated),
             "resched_ipi_sends_without_an_entry_in_the_log": timeline.unmatched_sends,
             **metadata}  # fmt: skip
    return {"traceEvents": meta + events, "otherData": other}


# -- the checker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    start: float
    end: float
    name: str


def _spans(events: Iterable[dict[str, Any]], problems: list[str]) -> dict[tuple, list[_Span]]:
    """Each thread's slices: "X" events and matched "B"/"E" pairs (problems for the rest)."""
    spans: dict[tuple, list[_Span]] = {}
    open_b: dict[tuple, list[dict[str, Any]]] = {}
    for e in sorted((e for e in events if e.get("ph") in ("X", "B", "E", "i")),
                    key=lambda e: e["ts"]):  # fmt: skip
        track = (e.get("pid"), e.get("tid"))
        if e["ph"] == "i":  # a zero-length slice of its thread, as Perfetto imports it
            if e.get("s", "t") == "t":
                spans.setdefault(track, []).append(_Span(e["ts"], e["ts"], e.get("name", "")))
        elif e["ph"] == "X":
            if not isinstance(e.get("dur"), int | float) or e["dur"] < 0:
                problems.append(f"slice {e.get('name')!r} on {track} has no valid dur")
                continue
            spans.setdefault(track, []).append(_Span(e["ts"], e["ts"] + e["dur"], e["name"]))
        elif e["ph"] == "B":
            open_b.setdefault(track, []).append(e)
        elif not open_b.get(track):
            problems.append(f"unbalanced: an E at {e['ts']} on {track} closes nothing")
        else:
            b = open_b[track].pop()
            spans.setdefault(track, []).append(_Span(b["ts"], e["ts"], b.get("name", "")))
    for track, left in open_b.items():
        problems += [f"unbalanced: B {b.get('name')!r} at {b['ts']} on {track} is never closed"
                     for b in left]  # fmt: skip
    return spans


def _nesting(track: tuple, spans: list[_Span], problems: list[str]) -> None:
    """Slices of one thread either nest or are disjoint."""
    stack: list[_Span] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        while stack and stack[-1].end <= s.start:
            stack.pop()
        if stack and s.end > stack[-1].end:
            problems.append(f"overlap on {track}: {stack[-1].name!r} "
                            f"[{stack[-1].start}, {stack[-1].end}] and {s.name!r} "
                            f"[{s.start}, {s.end}]")  # fmt: skip
            continue
        stack.append(s)


def _enclosing(spans: list[_Span], starts: list[float], ts: float) -> _Span | None:
    """The innermost slice strictly around `ts` (a flow's "s", an "f" with "bp": "e")."""
    best = None
    for s in spans[: bisect.bisect_left(starts, ts)]:
        if s.start < ts < s.end and (best is None or s.end - s.start <= best.end - best.start):
            best = s
    return best


def _next(spans: list[_Span], starts: list[float], ts: float) -> _Span | None:
    """The slice an "f" without "bp": "e" binds to: the first to begin at or after `ts` on
    its thread (of several at once, the outermost)."""
    i = bisect.bisect_left(starts, ts)
    if i == len(spans):
        return None
    first = [s for s in spans[i:] if s.start == spans[i].start]
    return max(first, key=lambda s: s.end - s.start)


def check_trace(doc: Any) -> list[str]:
    """What is wrong with a trace-event document (empty: nothing): slices balanced and properly
    nested per thread; every flow has one start and one end, each strictly inside a slice, on
    two different CPUs (processes), not into the past; every process and thread that has
    events is named; counters are numbers; otherData gives the time unit and the icount."""
    problems: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        return ["not a trace-event document: no traceEvents list"]
    events = [e for e in doc["traceEvents"] if isinstance(e, dict)]
    if len(events) != len(doc["traceEvents"]):
        problems.append("traceEvents holds something that is not an event object")
    procs = {e.get("pid") for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
             and (e.get("args") or {}).get("name")}  # fmt: skip
    threads = {(e.get("pid"), e.get("tid")) for e in events if e.get("ph") == "M"
               and e.get("name") == "thread_name" and (e.get("args") or {}).get("name")}  # fmt: skip
    for e in events:
        ph = e.get("ph")
        if ph == "M":
            continue
        if not isinstance(e.get("ts"), int | float):
            problems.append(f"event without a time: {e}")
            continue
        if not e.get("name"):
            problems.append(f"event without a name: {e}")
        if e.get("pid") not in procs:
            problems.append(f"process {e.get('pid')} has no name")
            procs.add(e.get("pid"))  # once
        if ph != "C" and (e.get("pid"), e.get("tid")) not in threads:
            problems.append(f"thread {e.get('pid')}/{e.get('tid')} has no name")
            threads.add((e.get("pid"), e.get("tid")))
        if ph == "C" and not all(
            isinstance(v, int | float) for v in (e.get("args") or {None: 0}).values()
        ):
            problems.append(f"counter {e.get('name')!r} with a value that is not a number")
    spans = _spans(events, problems)
    for track, ss in spans.items():
        _nesting(track, ss, problems)
    ordered = {t: sorted(ss, key=lambda s: s.start) for t, ss in spans.items()}
    starts = {t: [s.start for s in ss] for t, ss in ordered.items()}
    flows: dict[Any, dict[str, list[dict[str, Any]]]] = {}
    for e in events:
        if e.get("ph") in ("s", "f"):
            flows.setdefault(e.get("id"), {"s": [], "f": []})[e["ph"]].append(e)
    for ident, ends in flows.items():
        if len(ends["s"]) != 1 or len(ends["f"]) != 1:
            problems.append(f"flow {ident}: {len(ends['s'])} start(s) and {len(ends['f'])} "
                            "end(s), not one of each")  # fmt: skip
            continue
        for e in (ends["s"][0], ends["f"][0]):
            track = (e.get("pid"), e.get("tid"))
            find = _next if e["ph"] == "f" and e.get("bp") != "e" else _enclosing
            bound = find(ordered.get(track, []), starts.get(track, []), e["ts"])
            if bound is None or bound.end == bound.start:
                problems.append(f"flow {ident}: its {e['ph']} at {e['ts']} on {track} binds to "
                                f"{'an instant' if bound else 'no slice'}")  # fmt: skip
        s, f = ends["s"][0], ends["f"][0]
        if s.get("pid") == f.get("pid"):
            problems.append(f"flow {ident} does not connect two CPUs (both on pid {s.get('pid')})")
        if f["ts"] < s["ts"]:
            problems.append(f"flow {ident} goes back in time ({s['ts']} -> {f['ts']})")
    other = doc.get("otherData")
    if not isinstance(other, dict) or "time_unit" not in other or "icount" not in other:
        problems.append("otherData does not give the time unit and the icount")
    return problems
