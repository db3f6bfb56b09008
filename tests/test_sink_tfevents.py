"""gemmalog's TensorBoard records: read back by tensorboard's loader (every checksum checked),
byte-identical to tensorboard's own writer for the same events, kept alive by a bad step."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.summary.writer.record_writer import RecordWriter

import gemmalog
from gemmalog.sinks.tensorboard import TensorBoardSink
from gemmalog.sinks.tensorboard.event_file import EventFile
from gemmalog.sinks.tensorboard.histogram import histogram_bytes, histogram_value
from gemmalog.sinks.tensorboard.protos import ScalarEncoder, ScalarPlan, tag_field, text_value
from gemmalog.sinks.tensorboard.records import Framer, load_crc32c, masked


def event_files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob("events.out.tfevents.*"))


def records(path: Path) -> list[bytes]:
    """Every record's payload, read with tensorboard's reader, which verifies both checksums."""
    reader = pywrap_tensorflow.PyRecordReader_New(str(path))
    out = []
    while True:
        try:
            reader.GetNext()
        except pywrap_tensorflow.errors.OutOfRangeError:
            return out
        out.append(reader.record())


def framed_by_tensorboard(payloads: list[bytes]) -> bytes:
    """What tensorboard's RecordWriter writes for these payloads."""

    class Sink:
        def __init__(self) -> None:
            self.data = b""

        def write(self, data: bytes) -> None:
            self.data += data

    out = Sink()
    writer = RecordWriter(out)
    for payload in payloads:
        writer.write(payload)
    return out.data


def sample_events() -> list[event_pb2.Event]:
    Value = summary_pb2.Summary.Value
    histo = summary_pb2.HistogramProto(
        min=0.0, max=1.0, num=3, sum=1.5, sum_squares=1.25, bucket_limit=[0.5, 1.0], bucket=[1, 2]
    )
    return [
        event_pb2.Event(
            wall_time=1700000000.25,
            step=step,
            summary=summary_pb2.Summary(
                value=[Value(tag=f"train/m{i}", simple_value=0.5 * i + step) for i in range(20)]
            ),
        )
        for step in (0, 1, 300, -5, 2**40)
    ] + [
        event_pb2.Event(
            wall_time=1700000001.5,
            step=7,
            summary=summary_pb2.Summary(value=[Value(tag="reward_values/f", histo=histo)]),
        ),
    ]


def test_records_are_byte_identical_to_tensorboards_writer(tmp_path: Path) -> None:
    events = sample_events()
    theirs = EventFileWriter(str(tmp_path / "theirs"))
    for event in events:
        theirs.add_event(event)
    theirs.close()
    ours = EventFile(tmp_path / "ours", max_pending=3)
    for event in events:
        ours.add(event.SerializeToString())
    ours.close()
    (their_file,) = event_files(tmp_path / "theirs")
    (our_file,) = event_files(tmp_path / "ours")
    assert our_file.name.rsplit(".", 3)[0] == their_file.name.rsplit(".", 3)[0]  # same naming
    their_records, our_records = records(their_file), records(our_file)
    # The first record is each file's version event (its own wall time and writer name).
    assert event_pb2.Event.FromString(our_records[0]).file_version == "brain.Event:2"
    head = len(framed_by_tensorboard(their_records[:1]))
    our_head = len(framed_by_tensorboard(our_records[:1]))
    assert our_file.read_bytes()[our_head:] == their_file.read_bytes()[head:]
    assert len(our_records) == len(events) + 1


def test_sink_output_is_what_tensorboard_would_write_for_its_events(tmp_path: Path) -> None:
    """Every record the sink writes (scalars encoded without protos included) re-serializes and
    re-frames, through protobuf and tensorboard's RecordWriter, to the very same bytes."""
    batch: list[dict[str, Any]] = [
        {
            "kind": "metrics",
            "step": s,
            "ts": 1.7e9 + s,
            "metrics": {f"m{i}": i * 0.1 for i in range(20)},
        }
        for s in range(3)
    ]
    batch += [
        {
            "kind": "metrics",
            "step": 4,
            "ts": 0.0,
            "phase": "eval",
            "metrics": {"loss": -0.0, "é/ü": 1e39, "n": "NaN"},
        },
        {"kind": "system", "step": -3, "ts": 5, "gpu_util": 97, "flag": True, "big": 10**400},
        {"kind": "reward", "step": 5, "reward_fn": "f", "values": [1.0, 0.5, 0.0]},
        {
            "kind": "model_output",
            "step": 6,
            "question": "q",
            "model_output": "a\ud800b",
            "length_chars": 3,
        },
    ]
    with TensorBoardSink(tmp_path / "tb", sampling_ratio=1.0) as sink:
        sink.write([(e, b"") for e in batch])
    (path,) = event_files(tmp_path / "tb")
    payloads = records(path)
    assert len(payloads) == 1 + 3 + 1 + 1 + 1 + 2  # version, 3 + 1 + 1 scalars, text, 2 histograms
    reserialized = [event_pb2.Event.FromString(p).SerializeToString() for p in payloads]
    assert reserialized == payloads
    assert framed_by_tensorboard(reserialized) == path.read_bytes()
    system = event_pb2.Event.FromString(payloads[5])
    assert system.step == -3 and system.wall_time == 5.0
    assert {v.tag: v.simple_value for v in system.summary.value} == {
        "system/gpu_util": 97.0,
        "system/flag": 1.0,
        "system/big": math.inf,
    }


tags = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(width=32)


@settings(max_examples=300, deadline=None)
@given(
    wall=st.floats(allow_nan=False) | st.just(-0.0),
    step=st.integers(-(2**63), 2**63 - 1),
    values=st.lists(st.tuples(tags, floats), max_size=30),
)
def test_scalar_encoding_equals_protobufs(
    wall: float, step: int, values: list[tuple[str, float]]
) -> None:
    encoder = ScalarEncoder()
    ours = encoder.event(wall, step, [encoder.value(tag, v) for tag, v in values])
    Value = summary_pb2.Summary.Value
    summary = summary_pb2.Summary(
        value=[Value(tag=tag, simple_value=tfevents_float(v)) for tag, v in values]
    )
    expected = event_pb2.Event(wall_time=wall, step=step, summary=summary).SerializeToString()
    assert ours == expected


def tfevents_float(value: float) -> float:
    """protobuf's float field rounds a double; past float32's range that is ±inf."""
    return value if math.isnan(value) or abs(value) < 3.5e38 else math.copysign(math.inf, value)


def reference_histogram(values: list[float]) -> summary_pb2.HistogramProto:
    """The HistogramProto the sink built with protobuf before histograms were encoded with
    struct (kept here, unchanged, as the reference)."""
    lo, hi = min(values), max(values)
    count = len(values)
    if lo == hi:
        limits, counts = [hi], [float(count)]
    else:
        n = min(30, count)
        width = (hi - lo) / n
        limits = [lo + width * (i + 1) for i in range(n)]
        limits[-1] = hi
        counts = [0.0] * n
        for v in values:
            counts[min(n - 1, int((v - lo) / width))] += 1
    return summary_pb2.HistogramProto(
        min=lo,
        max=hi,
        num=count,
        sum=math.fsum(values),
        sum_squares=math.fsum(v * v for v in values),
        bucket_limit=limits,
        bucket=counts,
    )


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=400, deadline=None)
@given(
    wall=st.floats(allow_nan=False) | st.just(-0.0),
    step=st.integers(-(2**63), 2**63 - 1),
    tag=st.text(max_size=80),  # lone surrogates included: written escaped
    values=st.lists(
        finite | st.sampled_from([0.0, -0.0, 1.0, 1e308, -1e308, 5e-324]), min_size=1, max_size=70
    )
    | st.lists(st.just(-0.0), min_size=1, max_size=3),
)
def test_histogram_encoding_equals_protobufs(
    wall: float, step: int, tag: str, values: list[float]
) -> None:
    """Histogram events written with struct are the bytes protobuf serializes for the proto the
    sink built before: zero fields left out, -0.0 kept, packed buckets, escaped tags."""
    ours = ScalarEncoder().event(
        wall, step, [histogram_value(tag_field(tag), histogram_bytes(values))]
    )
    proto_tag = tag.encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        reference = reference_histogram(values)
    except (ZeroDivisionError, ValueError, OverflowError):
        # The earlier code failed (and lost the sink) when the spread underflows or overflows
        # a double, e.g. [0.0, 5e-324] or [-1e308, 1e308], or the sum overflows: now every
        # value is in a bucket and the sums are ±inf.
        event = event_pb2.Event.FromString(ours)
        histo = event.summary.value[0].histo
        assert histo.num == len(values) == sum(histo.bucket)
        assert (histo.min, histo.max) == (min(values), max(values))
        assert list(histo.bucket_limit) == sorted(histo.bucket_limit)
        return
    value = summary_pb2.Summary.Value(tag=proto_tag, histo=reference)
    expected = event_pb2.Event(
        wall_time=wall, step=step, summary=summary_pb2.Summary(value=[value])
    ).SerializeToString()
    assert ours == expected


@settings(max_examples=200, deadline=None)
@given(
    wall=st.floats(allow_nan=False) | st.just(-0.0),
    step=st.integers(-(2**63), 2**63 - 1),
    tag=st.text(max_size=40),
    text=st.text(max_size=3000),
)
def test_text_encoding_equals_protobufs(wall: float, step: int, tag: str, text: str) -> None:
    """Text samples written with struct are the bytes of the protos the sink built before."""
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorboard.plugins.text import metadata as text_metadata

    meta = text_metadata.create_summary_metadata(display_name=None, description=None)
    raw = text.encode("utf-8", "backslashreplace")
    ours = ScalarEncoder().event(
        wall, step, [text_value(tag_field(tag), raw, meta.SerializeToString())]
    )
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        string_val=[raw],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
    )
    proto_tag = tag.encode("utf-8", "backslashreplace").decode("utf-8")
    value = summary_pb2.Summary.Value(tag=proto_tag, metadata=meta, tensor=tensor)
    expected = event_pb2.Event(
        wall_time=wall, step=step, summary=summary_pb2.Summary(value=[value])
    ).SerializeToString()
    assert ours == expected


@given(data=st.binary(max_size=2000))
def test_checksums_equal_tensorboards(data: bytes) -> None:
    crc = load_crc32c()
    assert masked(crc(data)) == pywrap_tensorflow.masked_crc32c(data)
    framer = Framer(crc)
    assert framer(data) == framer(data) == framed_by_tensorboard([data])  # head cached by length


def test_tensorboards_loader_reads_every_record_and_rejects_a_bad_checksum(tmp_path: Path) -> None:
    with TensorBoardSink(tmp_path / "tb") as sink:
        sink.write(
            [
                ({"kind": "metrics", "step": s, "metrics": {"loss": 1.0 / (s + 1)}}, b"")
                for s in range(50)
            ]
        )
    (path,) = event_files(tmp_path / "tb")
    loaded = list(EventFileLoader(str(path)).Load())  # TensorBoard's own loading, compat layers too
    assert [e.step for e in loaded[1:]] == list(range(50))
    assert [e.summary.value[0].tensor.float_val[0] for e in loaded[1:]] == [
        pytest.approx(1.0 / (s + 1)) for s in range(50)
    ]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the middle of the file
    path.write_bytes(bytes(data))
    assert len(list(EventFileLoader(str(path)).Load())) < 51


def test_without_the_c_package_python_checksums_say_so_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "crc32c", None)  # import crc32c raises ImportError
    monkeypatch.setattr("gemmalog.notices._said", set())
    first = load_crc32c()
    second = load_crc32c()
    assert first is pywrap_tensorflow.crc32c and second is first
    err = capsys.readouterr().err
    assert err.count("crc32c package is not installed") == 1 and "pure Python" in err
    file = EventFile(tmp_path / "tb", crc32c=first)
    file.add(b"payload")
    file.close()
    (path,) = event_files(tmp_path / "tb")
    assert records(path)[1] == b"payload"


def test_the_c_package_is_a_core_dependency() -> None:
    import crc32c

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    core = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert '"crc32c' in core
    assert load_crc32c() is crc32c.crc32c


def test_a_step_beyond_int64_drops_its_values_once_and_keeps_the_sink(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tb.yaml"
    config.write_text(
        "version: 1\n"
        "loggers:\n  logging.metrics: {handlers: [tensorboard], propagate: false}\n"
        "handlers:\n  tensorboard: {class: logging.custom.TensorBoardHandler, log_dir: tb}\n"
    )
    run = gemmalog.initialize(config, root=root)
    gemmalog.log_training_progress(1, {"loss": 1.0})
    gemmalog.log_training_progress(2**70, {"loss": 2.0})
    gemmalog.log_training_progress(2**70 + 1, {"loss": 2.5})
    gemmalog.log_training_progress(3, {"loss": 3.0})
    gemmalog.shutdown()
    acc = ea.EventAccumulator(str(run.dir / "tb"), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    assert [(s.step, s.value) for s in acc.Scalars("train/loss")] == [(1, 1.0), (3, 3.0)]
    err = capsys.readouterr().err
    assert err.count("outside the int64 range") == 1
    assert "disabled" not in err
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert "tensorboard" not in (manifest.get("sink_errors") or {})
    steps = [
        e["step"]
        for e in map(orjson.loads, (run.dir / "events.0.jsonl").read_bytes().splitlines())
        if e["kind"] == "metrics"
    ]
    assert steps == [1, str(2**70), str(2**70 + 1), 3]  # the JSONL keeps every event (as text)


def test_records_wait_for_max_queue_or_a_flush(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path / "tb", max_queue=5, flush_secs=3600)
    (path,) = event_files(tmp_path / "tb")
    size = path.stat().st_size  # the version record, written at once
    sink.write([({"kind": "metrics", "step": s, "metrics": {"x": 1.0}}, b"") for s in range(4)])
    sink.flush()  # a tick before flush_secs: still in memory
    assert path.stat().st_size == size
    sink.write([({"kind": "metrics", "step": 4, "metrics": {"x": 1.0}}, b"")])
    assert len(records(path)) == 6
    sink.write([({"kind": "metrics", "step": 5, "metrics": {"x": 1.0}}, b"")])
    sink.flush_now()
    assert len(records(path)) == 7
    sink.close()
    sink.close()
    time.sleep(0)  # nothing runs in the background: the file is complete when close returns
    assert len(records(path)) == 7


def test_metrics_packed_in_one_call_equal_value_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-call packing of a repeated metrics dict gives the bytes of the careful path."""
    keys = ["loss", "eval_loss", "rewards/f/mean", "lr", "flag", "big", "n"]
    rows: list[list[Any]] = [
        [0.5, 0.25, 1.0, 1e-5, True, 1e39, 3],
        [0.4, None, "NaN", 2e-5, False, -1e39, 10**400],
        [0.3, 0.2, "text", 3e-5, 1, 2.0, -7],
        [float("nan"), float("inf"), -0.0, 0.0, 0, 1.5, 2**70],
    ]
    batch = [
        (
            {
                "kind": "metrics",
                "step": s,
                "ts": 1.7e9,
                "metrics": dict(zip(keys, row, strict=True)),
            },
            b"",
        )
        for s, row in enumerate(rows * 2)
    ]
    with TensorBoardSink(tmp_path / "fast") as sink:
        sink.write(batch)
    monkeypatch.setattr(ScalarPlan, "pack", lambda self, values: None)
    with TensorBoardSink(tmp_path / "careful") as sink:
        sink.write(batch)
    (fast,) = event_files(tmp_path / "fast")
    (careful,) = event_files(tmp_path / "careful")
    assert records(fast)[1:] == records(careful)[1:]
    first = event_pb2.Event.FromString(records(fast)[1])
    assert [v.tag for v in first.summary.value] == [
        "train/loss",
        "eval/loss",
        "train/rewards/f/mean",
        "train/lr",
        "train/flag",
        "train/big",
        "train/n",
    ]
    assert [v.simple_value for v in first.summary.value][4:] == [1.0, math.inf, 3.0]


@settings(max_examples=300, deadline=None)
@given(
    wall=st.floats() | st.sampled_from([0.0, -0.0, 1.7e9]),
    step=st.integers(-(2**63), 2**63 - 1) | st.integers(-2, 300),
    tags=st.lists(st.text(max_size=30), min_size=1, max_size=25),
    data=st.data(),
)
def test_a_planned_metrics_event_equals_protobufs(
    wall: float, step: int, tags: list[str], data: st.DataObject
) -> None:
    """ScalarPlan.event (the whole Event in one join) gives protobuf's bytes; None when a
    value is not a float32-packable number."""
    values = data.draw(st.lists(st.floats(width=32), min_size=len(tags), max_size=len(tags)))
    encoder = ScalarEncoder()
    plan = ScalarPlan([encoder.prefix(t) for t in tags])
    Value = summary_pb2.Summary.Value
    proto_tags = [t.encode("utf-8", "backslashreplace").decode("utf-8") for t in tags]
    summary = summary_pb2.Summary(
        value=[Value(tag=t, simple_value=v) for t, v in zip(proto_tags, values, strict=True)]
    )
    expected = event_pb2.Event(wall_time=wall, step=step, summary=summary).SerializeToString()
    assert plan.event(wall, step, values) == expected
    assert plan.event(wall, step, [*values[:-1], "text"]) is None
