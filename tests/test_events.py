"""The event declarations are the single source: docs, schema and types follow from them."""

from __future__ import annotations

from pathlib import Path

from gemmalog import events

DOCS = Path(__file__).resolve().parents[1] / "docs" / "events.md"


def test_docs_are_generated_from_the_declarations() -> None:
    assert DOCS.read_text(encoding="utf-8") == events.markdown(), (
        "run: python -c \"import gemmalog.events as e; open('docs/events.md','w').write(e.markdown())\""
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
    schema = events.json_schema()
    assert {v["title"] for v in schema["oneOf"]} == set(events.KINDS)
    assert set(schema["properties"]) == {f.name for f in events.ENVELOPE}
