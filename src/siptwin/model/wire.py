"""The one wire format of a call record between the twin's processes.

A record crosses a process boundary two ways, and both are encoded here:

- as JSON (:func:`call_to_record`, :func:`call_from_record`), where a launcher reads a region
  process's side channel: readable, and the trace's bytes as base64;
- as a pickled batch (:func:`encode_batch`, :func:`decode_batch`), where a worker of
  ``siptwin up --workers N`` sends the records that changed to its parent. An ended call (its
  trace packed) pickles in a few microseconds, its JSON form (``dataclasses.asdict``, base64 of
  every message) in a third of a millisecond - a fifth of what the call itself cost the worker.
  A batch is only ever read from the twin's own workers, on a Unix socket only the twin's user
  can open, which is what makes unpickling it safe.
"""

from __future__ import annotations

import base64
import dataclasses
import pickle
from typing import Any

from .calls import Alert, Call, TraceEntry

FRAME_HEADER = 4  # bytes of big-endian length before each pickled batch
# What decode_batch raises on bytes that are not a batch of our own records.
BatchError = (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError)


def call_to_record(call: Call) -> dict[str, Any]:
    record = dataclasses.asdict(call)
    record["trace"] = [
        {**dataclasses.asdict(t), "data": base64.b64encode(t.data).decode()} for t in call.trace
    ]
    record["webhooks"] = list(call.webhooks)
    return record


def call_from_record(record: dict[str, Any]) -> Call:
    fields = {f.name for f in dataclasses.fields(Call)}
    values = {k: v for k, v in record.items() if k in fields}
    values["trace"] = [
        TraceEntry(**{**t, "data": base64.b64decode(t["data"])}) for t in record.get("trace", [])
    ]
    values["alerts"] = tuple(Alert(**a) for a in record.get("alerts", ()))
    values["notes"] = tuple(record.get("notes", ()))
    return Call(**values)


def encode_batch(calls: list[Call]) -> bytes:
    """One length-prefixed frame holding ``calls``."""
    frame = pickle.dumps(calls, protocol=pickle.HIGHEST_PROTOCOL)
    return len(frame).to_bytes(FRAME_HEADER, "big") + frame


def frame_size(header: bytes) -> int:
    return int.from_bytes(header, "big")


def decode_batch(frame: bytes) -> list[Call]:
    """The calls of one frame's body (after its header); raises one of :data:`BatchError`."""
    calls = pickle.loads(frame)
    if not isinstance(calls, list) or not all(isinstance(c, Call) for c in calls):
        raise TypeError("a record batch holds a list of Call")
    return calls
