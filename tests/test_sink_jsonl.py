"""The JSONL shard's writes: lines handed to ``writev`` as they are, byte for byte what one
joined ``write`` gives, with partial writes resumed and failures counted line by line."""

from __future__ import annotations

import errno
import io
import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemmalog.sinks import jsonl
from gemmalog.sinks.jsonl import JsonlSink

pytestmark = pytest.mark.skipif(not hasattr(os, "writev"), reason="no os.writev here")


def lines_of(sizes: Sequence[int], start: int = 0) -> list[bytes]:
    return [
        orjson.dumps({"i": start + i, "text": "é" * (n // 2) + "x" * (n % 2)}) + b"\n"
        for i, n in enumerate(sizes)
    ]


def feed(sink: JsonlSink, lines: list[bytes]) -> None:
    sink.write([({}, line) for line in lines])


class StandIn:
    """A file object that is not an ``io.FileIO``: the sink uses its ``write``."""

    def __init__(self, real: io.FileIO) -> None:
        self.real = real

    def write(self, data: Any) -> int:
        return int(self.real.write(data) or 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(0, 3000), max_size=40), min_size=1, max_size=6),
    torn=st.booleans(),
)
def test_writev_gives_the_bytes_of_one_joined_write(batches: list[list[int]], torn: bool) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "ours.jsonl", Path(tmp) / "theirs.jsonl"
        for path in (ours, theirs):
            path.write_bytes(b'{"old": 1}\n{"torn' if torn else b"")
        a, b = JsonlSink(ours), JsonlSink(theirs)
        assert b._file is not None
        b._file = StandIn(b._file)  # type: ignore[assignment]
        start = 0
        for sizes in batches:
            lines = lines_of(sizes, start)
            start += len(sizes)
            for sink in (a, b):
                feed(sink, lines)
                sink.flush()
        a.close()
        b.close()
        assert ours.read_bytes() == theirs.read_bytes()
        assert a.lines_written == b.lines_written == start and a.lines_lost == 0


def test_more_lines_than_one_writev_takes(tmp_path: Path) -> None:
    lines = lines_of([5] * (3 * jsonl._IOV_MAX + 7))
    with JsonlSink(tmp_path / "e.jsonl") as sink:
        feed(sink, lines)
    assert (tmp_path / "e.jsonl").read_bytes() == b"".join(lines)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 200), min_size=1, max_size=60),
    steps=st.lists(st.integers(1, 700), min_size=1, max_size=30),
)
def test_short_writes_are_resumed_where_they_stopped(sizes: list[int], steps: list[int]) -> None:
    """``writev`` may write less than it was given (a signal, a pipe, a quota): the rest,
    from the middle of a line, follows."""
    import tempfile

    calls = itertools.cycle(steps)  # as many short writes as the lines need, of these sizes

    def short_writev(fd: int, buffers: Sequence[Any]) -> int:
        data = b"".join(bytes(b) for b in buffers)
        return os.write(fd, data[: next(calls)])

    lines = lines_of(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.jsonl"
        original = jsonl._writev
        jsonl._writev = short_writev
        try:
            with JsonlSink(path) as sink:
                feed(sink, lines)
        finally:
            jsonl._writev = original
        assert path.read_bytes() == b"".join(lines)
        assert sink.lines_written == len(lines)


def test_a_failure_midway_counts_whole_lines_and_starts_the_next_write_on_a_new_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = lines_of([10] * 10)
    cut = sum(map(len, lines[:4])) + 5  # four whole lines and the start of the fifth
    state = {"calls": 0}

    def failing_writev(fd: int, buffers: Sequence[Any]) -> int:
        state["calls"] += 1
        if state["calls"] == 1:
            return os.write(fd, b"".join(bytes(b) for b in buffers)[:cut])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    path = tmp_path / "e.jsonl"
    sink = JsonlSink(path)
    monkeypatch.setattr(jsonl, "_writev", failing_writev)
    feed(sink, lines)
    with pytest.raises(OSError) as raised:
        sink.flush()
    assert raised.value.errno == errno.ENOSPC and sink.error is raised.value
    assert (sink.lines_written, sink.lines_lost) == (4, 6)
    monkeypatch.setattr(jsonl, "_writev", os.writev)
    later = lines_of([3, 3], start=100)
    feed(sink, later)
    sink.close()
    assert sink.lines_written == 6 and sink.error is None
    text = path.read_bytes()
    assert text == b"".join(lines)[:cut] + b"\n" + b"".join(later)
    readable = []
    for line in text.splitlines():
        try:
            readable.append(orjson.loads(line)["i"])
        except orjson.JSONDecodeError:
            continue  # the torn fragment, which readers skip
    assert readable == [0, 1, 2, 3, 100, 101]


def test_a_failure_before_any_byte_loses_the_batch_and_keeps_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, buffers: Sequence[Any]) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    sink = JsonlSink(tmp_path / "e.jsonl")
    monkeypatch.setattr(jsonl, "_writev", full)
    feed(sink, lines_of([4] * 3))
    with pytest.raises(OSError):
        sink.flush()
    assert (sink.lines_written, sink.lines_lost) == (0, 3) and not sink._torn
    sink.close()
