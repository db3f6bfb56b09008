"""The event declarations are the single source: docs, schema and types follow from them."""

from __future__ import annotations

from pathlib import Path

from gemmalog import event_schema, events

DOCS = Path(__file__).resolve().parents[1] / "docs" / "events.md"


def test_docs_are_generated_from_the_declarations() -> None:
    assert DOCS.read_text(encoding="utf-8") == event_schema.markdown(), (
        'run: python -c "import gemmalog.event_schema as e; '
        "open('docs/events.md','w').write(e.markdown())\""
    )


def test_a_field_name_has_one_type_everywhere() -> None:
    seen: dict[str, str] = {f.name: f.sql for f in events.ENVELOPE}
    for kind in events.KINDS.values():
        for field in kind.fields:
            assert seen.setdefault(field.name, field.sql) == field.sql, (kind.name, field.name)


def test_required_kinds_are_declared() -> None:
    required = {
        "log",
        "run_start",
        "run_end",
        "metrics",
        "model_output",
        "reward",
        "reward_summary",
        "generation_metrics",
        "system",
    }
    assert required <= set(events.KINDS)
    output = events.KINDS["model_output"].field_names
    assert {
        "question",
        "true_answer",
        "model_output",
        "reasoning",
        "answer",
        "rewards",
        "correct",
    } <= set(output)


def test_json_schema_covers_every_kind() -> None:
    schema = event_schema.json_schema()
    assert {v["title"] for v in schema["oneOf"]} == set(events.KINDS)
    assert set(schema["properties"]) == {f.name for f in events.ENVELOPE}


def _conform_reference(event: dict[str, object]) -> dict[str, object]:
    """ConformToSchema as first written: every declared column of the kind checked at once."""
    from gemmalog.processors.conform import _ALL, _TO_CHECK_WITH_RESOURCES, CHECKS

    kind = event.get("kind")
    if type(kind) is not str:
        event["kind_"] = event.pop("kind", None)
        event["kind"] = kind = "log"
    for name in _TO_CHECK_WITH_RESOURCES.get(kind, _ALL).intersection(event):
        value = event[name]
        if not CHECKS[name](value):
            del event[name]
            event[name + "_"] = value
    return event


def test_conform_checks_resource_fields_like_any_column() -> None:
    """device/rss_mb/gpu_mb are checked apart (a type test when they are as AddResources
    sets them): any value, on any kind, is kept or renamed as the one-pass check did."""
    import copy
    import random

    from gemmalog.processors.conform import ConformToSchema

    rng = random.Random(7)
    values = [None, "cpu", "cuda:0", 1, 2.5, float("nan"), "nan", True, [1.0], {"a": 1.0}, "x"]
    names = ["device", "rss_mb", "gpu_mb", "step", "phase", "metrics", "rewards", "other"]
    kinds = [*events.KINDS, "made_up", None, 3]
    conform = ConformToSchema()
    renamed = 0
    for _ in range(3000):
        event: dict[str, object] = {"v": 1, "ts": 1.0, "kind": rng.choice(kinds)}
        event |= {"device": "cpu", "rss_mb": 26.2}
        for name in rng.sample(names, rng.randint(0, 4)):
            event[name] = rng.choice(values)
        expected = _conform_reference(copy.deepcopy(event))
        got = conform(None, "", copy.deepcopy(event))
        assert repr(sorted(got.items(), key=repr)) == repr(sorted(expected.items(), key=repr))
        # fields that keep their name keep their order (renamed ones go last, in the order
        # of a set's iteration before, so no order among them is promised)
        assert [k for k in got if k in event] == [k for k in expected if k in event]
        renamed += any(k in ("device_", "rss_mb_", "gpu_mb_") for k in got)
    assert renamed > 100  # not vacuous: bad resource values were met and renamed
