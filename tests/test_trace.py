"""python -m tools.trace: the event log as a Perfetto / Chrome trace and a timeline picture.

The converter runs on synthetic records (every rule of docs/trace.md, and what a log that
began or ends inside an entry gives) and on a real two-CPU demo; the checker that judges the
output is shown to catch broken traces (unbalanced, overlapping, dangling flows, unnamed
tracks) and a converter that puts entries on the CPU's track instead of the task's.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, mutant_build

from kernel.events import layout_hash
from kernel.vectors import LOCAL_TIMER_VECTOR, RESCHEDULE_VECTOR
from tools.cli import CliError
from tools.events.decode import Event, decode_event
from tools.timeline import draw_png
from tools.trace import (
    Recording,
    event_bytes,
    icount_ticks_per_instruction,
    load_recording,
    save_recording,
)
from tools.tracejson import check_trace, to_json
from tools.tracemodel import COUNTERS, PF_VECTOR, TrackKey, build_timeline

NONIDLE = 1 << 62
META = {"icount": None}


def ev(seq: int, tsc: int, kind: str, task: int, **kw) -> Event:
    """A record; by default logged at process level with RCU watching, outside any entry."""
    fields = {"vector": 0, "cpl": 0, "watching": True, "lockdep_on": True, "tracer_on": True,
              "irqs_on": True, "in_nmi": False, "regs_if": False, "dynticks": 2, "nesting": 1,
              "nmi_nesting": NONIDLE, "preempt_count": 0, "arg": 0, "cpu": 0}  # fmt: skip
    fields.update(kw)
    fields["in_entry"] = fields.get("in_entry", fields["vector"] != 0)
    return Event(seq=seq, tsc=tsc, kind=kind, task=task, **fields)


def two_cpus() -> list[tuple[int, list[Event], int | None]]:
    """CPU 0: task 5 takes a timer tick that sends CPU 1 the reschedule IPI and is preempted
    inside its exit by task 6, whose page fault sleeps in its handler: task 5 finishes its
    exit meanwhile, then task 6 its fault.  CPU 1: its idle task (2) takes the IPI in its RCU
    idle section, and an NMI arrives inside."""
    t, pf = LOCAL_TIMER_VECTOR, PF_VECTOR
    cpu0 = [
        ev(0, 1000, "idtentry_enter", 5, vector=t),
        ev(1, 1010, "trace_hardirqs_off", 5, vector=t),
        ev(2, 1020, "idtentry_enter_end", 5, vector=t),
        ev(3, 1100, "resched_ipi_send", 5, vector=t, arg=1),
        ev(4, 1200, "idtentry_exit", 5, vector=t),
        ev(5, 1210, "preempt_schedule_irq", 5, vector=t),
        ev(6, 1220, "sched_switch", 5, vector=t, arg=6),
        ev(7, 1300, "idtentry_enter", 6, vector=pf),
        ev(8, 1310, "trace_hardirqs_off", 6, vector=pf),
        ev(9, 1320, "idtentry_enter_end", 6, vector=pf),
        ev(10, 1900, "sched_switch", 6, vector=pf, arg=5),
        ev(11, 1910, "trace_hardirqs_on", 5, vector=t),
        ev(12, 1920, "idtentry_exit_end", 5, vector=t),
        ev(13, 2000, "sched_switch", 5, arg=6),
        ev(14, 2010, "handler", 6, vector=pf, arg=0x400000),
        ev(15, 2020, "idtentry_exit", 6, vector=pf),
        ev(16, 2030, "idtentry_exit_end", 6, vector=pf),
    ]
    eqs = {"watching": False, "nesting": 0, "nmi_nesting": 0, "cpu": 1}
    r = RESCHEDULE_VECTOR
    cpu1 = [
        ev(0, 900, "rcu_idle_enter", 2, **eqs),
        ev(1, 1500, "idtentry_enter", 2, vector=r, **eqs),
        ev(2, 1510, "lockdep_hardirqs_off", 2, vector=r, **eqs),
        ev(3, 1520, "rcu_irq_enter", 2, vector=r, **{**eqs, "watching": True, "nmi_nesting": 1}),
        ev(4, 1530, "rcu_nmi_enter", 2, vector=2, in_nmi=True, cpu=1, nmi_nesting=3),
        ev(5, 1540, "nmi", 2, vector=2, in_nmi=True, cpu=1, nmi_nesting=3),
        ev(6, 1550, "rcu_nmi_exit", 2, vector=2, in_nmi=True, cpu=1, nmi_nesting=1),
        ev(7, 1560, "idtentry_enter_end", 2, vector=r, cpu=1, arg=1),
        ev(8, 1600, "idtentry_exit", 2, vector=r, cpu=1, arg=1),
        ev(9, 1610, "rcu_irq_exit", 2, vector=r, **eqs),
        ev(10, 1620, "idtentry_exit_end", 2, vector=r, **eqs),
    ]
    return [(0, cpu0, None), (1, cpu1, 2)]


def test_two_cpus_give_a_trace_that_passes_its_check():
    timeline = build_timeline(two_cpus(), {5: "worker"})
    doc = to_json(timeline, META)
    assert check_trace(doc) == []
    assert [(f.source.track, f.target.track) for f in timeline.flows] == [
        (TrackKey(0, 5), TrackKey(1, 2))
    ]
    flows = [e for e in doc["traceEvents"] if e["ph"] in ("s", "f")]
    assert sorted(e["pid"] for e in flows) == [1, 2] and len({e["id"] for e in flows}) == 1
    entries = {(s.track, s.name, s.path) for s in timeline.slices if s.category == "entry"}
    assert entries == {(TrackKey(0, 5), "TIMER from kernel", "kernel"),
                       (TrackKey(0, 6), "#PF from kernel", "kernel"),
                       (TrackKey(1, 2), "RESCHED from kernel", "idle")}  # fmt: skip
    (nmi,) = [s for s in timeline.slices if s.category == "nmi"]
    assert (nmi.track, nmi.start, nmi.end, nmi.path) == (TrackKey(1, 2), 1530, 1550, "nmi")
    # Task 5's entry and task 6's fault overlap in time: each nests on its task's own track.
    (held,) = [s for s in timeline.slices if s.track == TrackKey(0, 5) and s.category == "entry"]
    assert (held.start, held.end) == (1000, 1920)
    (fault,) = [s for s in timeline.slices if s.track == TrackKey(0, 6) and s.category == "entry"]
    assert (fault.start, fault.end) == (1300, 2030)
    running = [(s.name, s.start, s.end) for s in timeline.slices if s.track == TrackKey(0)]
    assert running == [("task 5 (worker)", 1000, 1220), ("task 6", 1220, 1900),
                       ("task 5 (worker)", 1900, 2000), ("task 6", 2000, 2030)]  # fmt: skip
    counters = {(c.cpu, c.name) for c in timeline.counters}
    assert {name for _, name in counters} == set(COUNTERS)
    watching = [(c.ts, c.value) for c in timeline.counters
                if c.cpu == 1 and c.name == "RCU watching"]  # fmt: skip
    assert watching == [(900, 0), (1520, 1), (1610, 0)]
    assert [c.value for c in timeline.counters if c.name == "context switches"] == [1, 2, 3]
    named = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert named == {"CPU 0: running", "CPU 1: running", "task 5 (worker)", "task 6",
                     "task 2 (idle)"}  # fmt: skip
    assert doc["otherData"]["icount"] is None and "TSC tick" in doc["otherData"]["time_unit"]


def test_the_checker_catches_a_converter_that_puts_entries_on_the_cpus_track():
    """Entries nest per task (a kernel stack each), not per CPU: on one track per CPU the
    preempted task's entry and the next task's overlap, and the check says so."""
    timeline = build_timeline(two_cpus())
    per_cpu = dataclasses.replace(timeline, slices=[
        dataclasses.replace(s, track=TrackKey(s.track.cpu, 0)) for s in timeline.slices
        if s.category != "running"])  # fmt: skip
    per_cpu.track_names[TrackKey(0, 0)] = per_cpu.track_names[TrackKey(1, 0)] = "everything"
    problems = check_trace(to_json(per_cpu, META))
    assert any(p.startswith("overlap on (1, 100001)") for p in problems), problems


def test_a_log_that_begins_and_ends_inside_entries_closes_every_slice():
    t = LOCAL_TIMER_VECTOR
    records = [
        ev(40, 5000, "trace_hardirqs_off", 3, vector=t),  # its entry began before the log
        ev(41, 5100, "idtentry_exit", 3, vector=t),
        ev(42, 5200, "idtentry_exit_end", 3, vector=t),
        ev(43, 5300, "idtentry_enter", 3, vector=t),  # never closed
        ev(44, 5400, "trace_hardirqs_off", 3, vector=t),
        ev(45, 5500, "syscall_enter", 4, vector=0, cpl=3, in_syscall64=True),
        ev(46, 5600, "task_exit", 4, vector=0, cpl=3, in_syscall64=True),
        ev(47, 5700, "rcu_nmi_enter", 3, vector=2, in_nmi=True),  # NMI cut off by the end
    ]
    timeline = build_timeline([(0, records, None)])
    assert check_trace(to_json(timeline, META)) == []
    truncated = {(s.name, s.start, s.end, s.truncated) for s in timeline.slices if s.truncated}
    assert truncated == {
        ("TIMER from kernel", 5000, 5200, "began before the log's first record"),
        ("TIMER from kernel", 5300, 5700, "still open at the end of the log"),
        ("idtentry_enter", 5300, 5700, "still open at the end of the log"),
        ("syscall 0", 5500, 5600, "its task exited inside"),
        ("task 3", 5000, 5500, "running before the log's first record"),
    }
    (nmi,) = [s for s in timeline.slices if s.category == "nmi"]
    assert (nmi.start, nmi.end) == (5700, 5700)


def test_a_send_with_no_entry_in_the_log_gets_no_flow():
    cpus = two_cpus()
    cpus[1] = (1, [e for e in cpus[1][1] if e.vector != RESCHEDULE_VECTOR], 2)
    timeline = build_timeline(cpus)
    assert timeline.flows == [] and timeline.unmatched_sends == 1
    assert check_trace(to_json(timeline, META)) == []


def test_an_nmi_between_a_slot_and_its_tsc_keeps_time_monotonic():
    """A record's slot is claimed before its rdtsc: an NMI in between logs a later slot with
    an earlier time.  Times are clamped so that slices still nest."""
    t = LOCAL_TIMER_VECTOR
    records = [ev(0, 100, "idtentry_enter", 1, vector=t),
               ev(1, 180, "idtentry_enter_end", 1, vector=t),
               ev(2, 150, "nmi", 1, vector=2, in_nmi=True),
               ev(3, 200, "idtentry_exit", 1, vector=t),
               ev(4, 210, "idtentry_exit_end", 1, vector=t)]  # fmt: skip
    assert check_trace(to_json(build_timeline([(0, records, None)]), META)) == []


def good_doc() -> dict:
    return to_json(build_timeline(two_cpus()), META)


def broken(edit) -> list[str]:
    doc = good_doc()
    edit(doc["traceEvents"])
    return check_trace(doc)


def _first(events: list[dict], **match) -> dict:
    return next(e for e in events if all(e.get(k) == v for k, v in match.items()))


def test_the_checker_catches_broken_traces():
    assert check_trace(good_doc()) == []
    assert check_trace({"events": []}) == ["not a trace-event document: no traceEvents list"]

    def unbalanced(events):
        events.append({"ph": "B", "name": "open", "pid": 1, "tid": 100000, "ts": 5})
        events.append({"ph": "E", "pid": 2, "tid": 200000, "ts": 9})

    problems = broken(unbalanced)
    assert any("B 'open' at 5 on (1, 100000) is never closed" in p for p in problems)
    assert any("an E at 9 on (2, 200000) closes nothing" in p for p in problems)

    def overlapping(events):
        x = _first(events, ph="X", cat="entry")
        events.append({**x, "name": "straddles", "ts": x["ts"] + 1, "dur": x["dur"] + 5})

    assert any("overlap on" in p and "'straddles'" in p for p in broken(overlapping))

    def dangling(events):
        events.remove(_first(events, ph="f"))

    assert broken(dangling) == ["flow 1: 1 start(s) and 0 end(s), not one of each"]

    def from_nothing(events):
        _first(events, ph="s")["ts"] = -50

    assert broken(from_nothing) == ["flow 1: its s at -50 on (1, 100006) binds to no slice"]

    def into_an_instant(events):
        call = _first(events, ph="i", tid=200003, name="lockdep_hardirqs_off")
        _first(events, ph="f")["ts"] = call["ts"] - 0.5

    assert broken(into_an_instant) == ["flow 1: its f at 609.5 on (2, 200003) binds to an instant"]

    def same_cpu(events):
        s, f = _first(events, ph="s"), _first(events, ph="f")
        f.update(pid=s["pid"], tid=s["tid"], ts=s["ts"])

    assert "flow 1 does not connect two CPUs (both on pid 1)" in broken(same_cpu)

    def unnamed(events):
        events.remove(_first(events, ph="M", name="thread_name", tid=200003))

    assert broken(unnamed) == ["thread 2/200003 has no name"]

    doc = good_doc()
    del doc["otherData"]["icount"]
    assert check_trace(doc) == ["otherData does not give the time unit and the icount"]


def test_records_round_trip_through_their_bytes():
    for e in [*two_cpus()[0][1], *two_cpus()[1][1],
              ev(9, 1, "syscall_enter", 3, cpl=3, in_syscall64=True, sigpending=True,
                 notify_resume=True, need_resched=True, regs_if=True, nesting=-1)]:  # fmt: skip
        assert decode_event(event_bytes(e)) == e


def test_a_saved_log_loads_and_one_of_another_layout_is_refused(tmp_path):
    rec = Recording(tuple((c, tuple(e), i) for c, e, i in two_cpus()), {5: "worker"}, "x=1",
                    "shift=0,sleep=off")  # fmt: skip
    path = tmp_path / "run.events.json"
    save_recording(rec, path)
    assert load_recording(path) == rec
    doc = json.loads(path.read_text())
    doc["event_layout_hash"] = "0x1234"
    path.write_text(json.dumps(doc))
    with pytest.raises(CliError, match="saved with event layout 0x1234.*record it again"):
        load_recording(path)
    path.write_text("not json")
    with pytest.raises(CliError, match="is not a saved event log"):
        load_recording(path)
    done = run_cli("--load", str(path), "-o", str(tmp_path / "t.json"))
    assert done.returncode == 4 and "Traceback" not in done.stderr
    assert done.stderr.startswith("trace: error:") and done.stderr.count("\n") == 1


def test_the_metadata_says_what_a_tick_is():
    assert icount_ticks_per_instruction("shift=0,sleep=off") == 1
    assert icount_ticks_per_instruction("shift=5,sleep=off") == 32
    assert icount_ticks_per_instruction("shift=auto") is None
    assert icount_ticks_per_instruction(None) is None
    rec = Recording((), {}, "", "shift=0,sleep=off")
    meta = rec.metadata()
    assert meta["one_tick_is_one_instruction"] is True
    assert meta["tick_meaning"].startswith("1 tick(s) per instruction")
    assert meta["event_layout_hash"] == f"{layout_hash():#x}"
    assert Recording((), {}, "", None).metadata()["one_tick_is_one_instruction"] is False


def test_the_perfetto_protobuf_holds_the_same_tracks_nesting_and_flows():
    trace_pb2 = pytest.importorskip("perfetto.protos.perfetto.trace.perfetto_trace_pb2")
    from tools.traceproto import to_proto

    timeline = build_timeline(two_cpus())
    trace = trace_pb2.Trace.FromString(to_proto(timeline, META))
    tracks = {p.track_descriptor.uuid: p.track_descriptor for p in trace.packet
              if p.HasField("track_descriptor")}  # fmt: skip
    stacks: dict[int, list[str]] = {}
    flows: dict[int, list[int]] = {}
    te = trace_pb2.TrackEvent
    slices = 0
    for p in sorted((p for p in trace.packet if p.HasField("track_event")),
                    key=lambda p: p.timestamp):  # fmt: skip
        ev_ = p.track_event
        desc = tracks[ev_.track_uuid]
        assert desc.thread.thread_name or desc.name, desc
        if ev_.type == te.TYPE_SLICE_BEGIN:
            stacks.setdefault(ev_.track_uuid, []).append(ev_.name)
            slices += 1
            for f in ev_.flow_ids:
                flows.setdefault(f, []).append(desc.thread.pid)
            for f in ev_.terminating_flow_ids:
                flows.setdefault(f, []).append(-desc.thread.pid)
        elif ev_.type == te.TYPE_SLICE_END:
            assert stacks[ev_.track_uuid], f"an end with nothing open on {desc}"
            stacks[ev_.track_uuid].pop()
    assert slices == len(timeline.slices)
    assert all(not s for s in stacks.values())
    assert flows == {1: [1, -2]}  # out of CPU 0's process, into CPU 1's


def test_the_timeline_png_is_a_picture_of_sane_size():
    png = draw_png(build_timeline(two_cpus()), META)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert 600 <= width <= 3000 and 200 <= height <= 2000
    assert len(png) < 200_000


def test_the_readme_shows_the_demos_picture():
    image = ROOT / "docs/images/timeline-demo.png"
    data = image.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 200_000
    assert "docs/images/timeline-demo.png" in (ROOT / "README.md").read_text()


# -- the command line and a real run -----------------------------------------------------------


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.trace", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


def test_bad_images_get_one_line_naming_the_command(tmp_path):
    done = run_cli(str(tmp_path / "none.elf"))
    assert done.returncode == 4 and "none.elf not found" in done.stderr
    other = tmp_path / "other.elf"
    other.write_bytes(b"\x7fELF not really")
    done = run_cli(str(other))
    assert done.returncode == 4 and "not a kernel image" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli("-o", str(tmp_path / "t.txt"))
    assert done.returncode == 64 and "must end in .json or .perfetto-trace" in done.stderr


KINDS_LINE = '    "resched_ipi_send",  # smp_send_reschedule, before sending; arg = the target CPU (a mark)\n'
HASH_LINE = '    lines += [".global event_layout_hash", "event_layout_hash:", f"    .quad {layout_hash():#x}"]\n'


@pytest.mark.parametrize(
    ("edit", "said"),
    [((KINDS_LINE, KINDS_LINE + '    "extra",\n'), "is stale: built with event layout"),
     ((HASH_LINE, ""), "is stale: it has no event_layout_hash")],
    ids=["one-more-kind", "no-digest"],
)  # fmt: skip
def test_an_image_built_with_another_event_layout_is_refused(tmp_path, build_cache, edit, said):
    """A kernel whose kernel/events.py had one more kind than this tree's, and one built before
    the image carried the digest: both stale, both refused with the command to run."""
    out = mutant_build(tmp_path, build_cache, [("events.py", *edit)])
    done = run_cli(str(out / "kernel.elf"), "-o", str(tmp_path / "t.json"))
    assert done.returncode == 4, done.stderr
    assert said in done.stderr and "run `make build`" in done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "t.json").exists()


@pytest.fixture(scope="module")
def demo(run_once, kernel_image):
    """The demo on two CPUs, traced once per run (every xdist worker shares it): (output
    directory, completed process)."""

    def make(out: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
        done = run_cli(str(kernel_image), "--smp", "2", "-o", str(out / "trace.json"),
                       "--png", str(out / "timeline.png"), "--save",
                       str(out / "demo.events.json"), timeout=400)  # fmt: skip
        return out, done

    return run_once("trace-demo", make)


@pytest.mark.qemu
@pytest.mark.realtime("SMP: under -icount the vCPUs take turns")
def test_the_demo_on_two_cpus_gives_a_trace_that_passes_its_check(demo):
    out, done = demo
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "trace.json").read_text())
    assert check_trace(doc) == []
    events = doc["traceEvents"]
    assert {e["args"]["name"] for e in events if e["name"] == "process_name"} == {"CPU 0", "CPU 1"}
    assert {e["name"] for e in events if e["ph"] == "C"} >= set(COUNTERS) - {"page faults"}
    flows = [e for e in events if e["ph"] == "s"]
    assert flows, "the demo wakes tasks on the other CPU: reschedule IPIs"
    entries = {e["name"] for e in events if e["ph"] == "X" and e["cat"] == "entry"}
    assert {"#PF from user", "TIMER from kernel", "RESCHED from kernel"} <= entries
    png = (out / "timeline.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 200_000


@pytest.mark.qemu
@pytest.mark.realtime("SMP: under -icount the vCPUs take turns")
def test_the_kernels_marks_name_the_switch_and_the_ipi_target(demo, tmp_path):
    """Each sched_switch names the task whose records follow on that CPU, each
    resched_ipi_send another online CPU; an edited copy of the log (one switch naming its
    own task) fails the same check."""
    out, done = demo
    assert done.returncode == 0, done.stderr
    rec = load_recording(out / "demo.events.json")
    assert mark_problems(rec) == []
    assert any(e.kind == "sched_switch" for _, events, _ in rec.cpus for e in events)
    cpu, events, idle = rec.cpus[0]
    i = next(i for i, e in enumerate(events) if e.kind == "sched_switch")
    edited = [*events[:i], dataclasses.replace(events[i], arg=events[i].task), *events[i + 1 :]]
    bad = dataclasses.replace(rec, cpus=((cpu, tuple(edited), idle), *rec.cpus[1:]))
    assert len(mark_problems(bad)) == 1
    # Converting the saved records again gives the same trace.
    again = run_cli("--load", str(out / "demo.events.json"), "-o", str(tmp_path / "again.json"))
    assert again.returncode == 0, again.stderr
    doc = json.loads((out / "trace.json").read_text())
    assert json.loads((tmp_path / "again.json").read_text()) == doc
    # ... and its protobuf form holds the same slices and flows.
    trace_pb2 = pytest.importorskip("perfetto.protos.perfetto.trace.perfetto_trace_pb2")
    proto = tmp_path / "again.perfetto-trace"
    again = run_cli("--load", str(out / "demo.events.json"), "-o", str(proto))
    assert again.returncode == 0, again.stderr
    events = [p.track_event for p in trace_pb2.Trace.FromString(proto.read_bytes()).packet
              if p.HasField("track_event")]  # fmt: skip
    begins = [e for e in events if e.type == trace_pb2.TrackEvent.TYPE_SLICE_BEGIN]
    assert len(begins) == sum(1 for e in doc["traceEvents"] if e["ph"] == "X")
    assert sum(len(e.flow_ids) for e in begins) == sum(
        1 for e in doc["traceEvents"] if e["ph"] == "s"
    )


def mark_problems(rec: Recording) -> list[str]:
    online = {cpu for cpu, _, _ in rec.cpus}
    out = []
    for cpu, events, _ in rec.cpus:
        plain = [e for e in events if not e.in_nmi]
        for e, nxt in zip(plain, plain[1:], strict=False):
            if e.kind == "sched_switch" and (nxt.task != e.arg or e.arg == e.task):
                out.append(f"CPU {cpu}: {e} is followed by task {nxt.task}")
        for e in plain:
            if e.kind == "resched_ipi_send" and (e.arg == cpu or e.arg not in online):
                out.append(f"CPU {cpu}: {e} targets CPU {e.arg}")
    return out
