"""A Timeline (tools/tracemodel.py) in Perfetto's protobuf trace format, built offline with the
`perfetto` package's TraceProtoBuilder (an optional dependency: pip install '.[trace]').

The same tracks as the JSON (tools/tracejson.py): a process per CPU, a thread per task and the
CPU's own thread, counter tracks under each CPU's process; slices as SLICE_BEGIN/SLICE_END
track events, calls as INSTANT, counters as COUNTER; a reschedule IPI is a flow from the
sender's mark (flow_ids) to the receiver's entry (terminating_flow_ids).  Times as in the JSON:
one TSC tick is shown as one microsecond.  The metadata goes into one debug-annotated instant
on the first CPU's track, since the format has no free-form header.
"""

from __future__ import annotations

import heapq
import json
from typing import Any

from tools.tracejson import pid_of, tid_of
from tools.tracemodel import Slice, Timeline, TrackKey

SEQUENCE = 1
NS_PER_TICK = 1000  # one tick shown as one microsecond, as in the JSON
COUNTER_UUID_BASE = 1 << 40
PROCESS_UUID_BASE = 1 << 41


def _nested_order(slices: list[Slice]) -> list[tuple[int, int, Slice]]:
    """(time, 0 begin / 1 end, slice) of one track, in an order that nests: a parent begins
    before and ends after its children, a slice ends before its sibling begins."""
    out: list[tuple[int, int, Slice]] = []
    stack: list[Slice] = []
    for s in sorted(slices, key=lambda s: (s.start, -s.end)):
        while stack and stack[-1].end <= s.start:
            done = stack.pop()
            out.append((done.end, 1, done))
        out.append((s.start, 0, s))
        stack.append(s)
    while stack:
        done = stack.pop()
        out.append((done.end, 1, done))
    return out


def to_proto(timeline: Timeline, metadata: dict[str, Any]) -> bytes:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent
    from perfetto.trace_builder.proto_builder import TraceProtoBuilder

    builder = TraceProtoBuilder()
    t0 = timeline.start
    cpus = sorted({k.cpu for k in timeline.track_names})
    counter_uuid: dict[tuple[int, str], int] = {}
    for cpu in cpus:
        td = builder.add_packet().track_descriptor
        td.uuid = PROCESS_UUID_BASE + cpu
        td.process.pid = pid_of(cpu)
        td.process.process_name = f"CPU {cpu}"
    for key, name in sorted(timeline.track_names.items(), key=lambda kv: kv[0].order):
        td = builder.add_packet().track_descriptor
        td.uuid = tid_of(key)
        td.thread.pid = pid_of(key.cpu)
        td.thread.tid = tid_of(key)
        td.thread.thread_name = name
    for c in timeline.counters:
        if (c.cpu, c.name) not in counter_uuid:
            uuid = counter_uuid[(c.cpu, c.name)] = COUNTER_UUID_BASE + len(counter_uuid)
            td = builder.add_packet().track_descriptor
            td.uuid = uuid
            td.parent_uuid = PROCESS_UUID_BASE + c.cpu
            td.name = c.name
            td.counter.SetInParent()
    flows_out: dict[int, list[int]] = {}
    flows_in: dict[int, list[int]] = {}
    for f in timeline.flows:
        flows_out.setdefault(id(f.source), []).append(f.ident)
        flows_in.setdefault(id(f.target), []).append(f.ident)
    by_track: dict[TrackKey, list[Slice]] = {}
    for s in timeline.slices:
        by_track.setdefault(s.track, []).append(s)
    # Every track's begin/end in nesting order, merged by time (heapq.merge keeps each list's
    # order for equal times), then instants and counters.
    streams = [[(ts, i, end, s) for i, (ts, end, s) in enumerate(_nested_order(ss))]
               for ss in by_track.values()]  # fmt: skip
    for ts, _, end, s in heapq.merge(*streams, key=lambda x: x[0]):
        packet = builder.add_packet()
        packet.timestamp = (ts - t0) * NS_PER_TICK
        packet.trusted_packet_sequence_id = SEQUENCE
        ev = packet.track_event
        ev.track_uuid = tid_of(s.track)
        if end:
            ev.type = TrackEvent.TYPE_SLICE_END
            continue
        ev.type = TrackEvent.TYPE_SLICE_BEGIN
        ev.name = s.name
        ev.categories.append(s.category)
        ev.flow_ids.extend(flows_out.get(id(s), []))
        ev.terminating_flow_ids.extend(flows_in.get(id(s), []))
        for k, v in {**s.args, "path": s.path, "truncated": s.truncated}.items():
            if v is not None and not isinstance(v, dict):
                ann = ev.debug_annotations.add()
                ann.name = k
                ann.string_value = str(v)
    for i in timeline.instants:
        packet = builder.add_packet()
        packet.timestamp = (i.ts - t0) * NS_PER_TICK
        packet.trusted_packet_sequence_id = SEQUENCE
        packet.track_event.track_uuid = tid_of(i.track)
        packet.track_event.type = TrackEvent.TYPE_INSTANT
        packet.track_event.name = i.name
    for c in timeline.counters:
        packet = builder.add_packet()
        packet.timestamp = (c.ts - t0) * NS_PER_TICK
        packet.trusted_packet_sequence_id = SEQUENCE
        packet.track_event.track_uuid = counter_uuid[(c.cpu, c.name)]
        packet.track_event.type = TrackEvent.TYPE_COUNTER
        packet.track_event.counter_value = c.value
    if cpus:
        packet = builder.add_packet()
        packet.timestamp = 0
        packet.trusted_packet_sequence_id = SEQUENCE
        packet.track_event.track_uuid = tid_of(TrackKey(cpus[0]))
        packet.track_event.type = TrackEvent.TYPE_INSTANT
        packet.track_event.name = "trace metadata"
        ann = packet.track_event.debug_annotations.add()
        ann.name = "metadata"
        ann.string_value = json.dumps({"time_unit": "1 us shown = 1 TSC tick", "tsc_base": t0,
                                       **metadata})  # fmt: skip
    return builder.serialize()
