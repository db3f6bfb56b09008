"""The report page: one self-contained HTML file, every text from a run escaped.

No script, no external asset; a Content-Security-Policy forbids both, so even a
completion that slipped through escaping could neither run nor fetch anything.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

import orjson

from gemmalog._version import __version__
from gemmalog.events import nonfinite_text
from gemmalog.report import _sections
from gemmalog.report._data import EXTREMES, NON_FINITE_ROWS, RunData
from gemmalog.report._plots import color
from gemmalog.sinks.csvrows import messages_text

#: Section ids, in page order, with their headings.
SECTIONS = {
    "health": "Health",
    "runs": "Runs",
    "loss": "Loss",
    "reward": "Total reward",
    "reward-functions": "Reward functions",
    "accuracy": "Accuracy",
    "lengths": "Completion length",
    "kl-entropy": "KL and entropy",
    "memory": "Memory",
    "completions": "Best and worst completions",
    "non-finite": "NaN and Inf values",
    "sink-errors": "Sink errors and lost events",
}
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
:root { color-scheme: light dark; --fg: #1f2328; --bg: #ffffff; --muted: #59636e;
  --line: #d1d9e0; --card: #f6f8fa; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1; --line: #3d444d; --card: #151b23;
    --ok: #3fb950; --warn: #d29922; --bad: #f85149; } }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; padding: 1.5rem; max-width: 1240px; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; } h2 { font-size: 1.25rem; margin: 2rem 0 .6rem;
  padding-bottom: .3rem; border-bottom: 1px solid var(--line); } h3 { font-size: 1.05rem; }
nav a { color: inherit; margin-right: .8rem; font-size: .9rem; }
.muted, .empty { color: var(--muted); } .empty { font-style: italic; }
.plot svg { width: 100%; height: auto; color: var(--fg); }
.plot svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif !important; }
.runs { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1rem; }
.run { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; }
.run h3 { margin: 0 0 .5rem; overflow-wrap: anywhere; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px; margin-right: .4em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; margin: .4rem 0 1rem; }
th, td { border-bottom: 1px solid var(--line); padding: .25rem .5rem; text-align: left;
  vertical-align: top; overflow-wrap: break-word; }
th { font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.wide { min-width: 14rem; } tr.detail td { padding-bottom: .6rem; }
tr:has(+ tr.detail) td { border-bottom: none; } .question { color: var(--muted); margin-bottom: .2rem; }
pre.completion { max-height: 12rem; margin: 0; }
table.kv th { color: var(--muted); font-weight: 500; white-space: nowrap; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; font-size: .8rem; background: var(--card);
  border: 1px solid var(--line); border-radius: 6px; padding: .5rem; max-height: 28rem; overflow: auto; }
details summary { cursor: pointer; }
.status { font-weight: 600; } .status-completed { color: var(--ok); }
.status-failed, .sev-error { color: var(--bad); } .sev-warning { color: var(--warn); }
.sev-error, .sev-warning, .sev-info { font-weight: 600; } .status-interrupted, .status-running, .status-unknown { color: var(--warn); }
"""


def fmt(value: Any) -> str:
    """A value as short text (not yet escaped): NaN and infinities spelled out, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return nonfinite_text(value)
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or math.isnan(seconds):
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {secs} s" if hours else f"{minutes} min {secs} s"


def _table(
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    numeric: Sequence[bool] = (),
    details: Sequence[str] = (),
) -> str:
    """A table of escaped cells; ``details[i]`` (HTML built from escaped parts) is a full-width
    row under row i.

    Headers may break after an underscore (reward function names are long); text cells
    longer than a few words get room to be read.
    """
    th = "".join(f"<th>{escape(h).replace('_', '_<wbr>')}</th>" for h in head)
    body = []
    for n, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            wide = isinstance(cell, str) and len(cell) > 40
            cls = ' class="num"' if i < len(numeric) and numeric[i] else ""
            cls = ' class="wide"' if wide else cls
            cells.append(f"<td{cls}>{escape(fmt(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
        if n < len(details):
            body.append(f'<tr class="detail"><td colspan="{len(head)}">{details[n]}</td></tr>')
    return f'<div class="scroll"><table><tr>{th}</tr>{"".join(body)}</table></div>'


def _pre(summary: str, text: Any) -> str:
    if text in (None, "", {}, []):
        return ""
    body = (
        text if isinstance(text, str) else json.dumps(text, indent=2, sort_keys=True, default=str)
    )
    return f"<details><summary>{escape(summary)}</summary><pre>{escape(body)}</pre></details>"


def _run_card(d: RunData, index: int) -> str:
    i = d.info
    versions = i.get("versions") if isinstance(i.get("versions"), dict) else {}
    status = str(i.get("status") or "unknown")
    rows: list[tuple[str, str]] = [
        ("run id", escape(d.run)),
        ("status", f'<span class="status status-{escape(status)}">{escape(status)}</span>'),
        ("started", escape(fmt(i.get("start")))),
        ("duration", escape(duration(i.get("duration_s")))),
        ("steps", escape(fmt(i.get("steps")))),
        ("events", escape(fmt(i.get("events")))),
        ("ranks", escape(f"{fmt(i.get('ranks'))} of world size {fmt(i.get('world_size'))}")),
        ("last reward", escape(fmt(i.get("last_reward")))),
        ("accuracy", escape(fmt(i.get("accuracy")))),
        ("model", escape(fmt(i.get("model_name")))),
        ("parameters", escape(fmt(i.get("num_parameters")))),
        ("dataset size", escape(fmt(i.get("dataset_size")))),
        ("host", escape(fmt(i.get("host")))),
        ("git commit", escape(fmt(i.get("git_commit")))),
        ("directory", escape(fmt(i.get("dir")))),
    ]
    if versions:
        text = ", ".join(f"{k} {v}" for k, v in versions.items())
        rows.append(("versions", escape(text)))
    table = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    name = escape(str(i.get("name") or d.run))
    swatch = f'<span class="swatch" style="background:{color(index)}"></span>'
    return (
        f'<article class="run"><h3>{swatch}{name}</h3><table class="kv">{table}</table>'
        f"{_pre('configuration', i.get('config'))}{_pre('training arguments', i.get('training_args'))}"
        "</article>"
    )


def _conversation(messages: Any) -> str:
    """A completion's whole conversation (the ``messages`` JSON) as readable lines, or ""."""
    if not messages:
        return ""
    try:
        parsed = orjson.loads(messages) if isinstance(messages, str | bytes) else messages
    except orjson.JSONDecodeError:
        return ""
    text = messages_text(parsed)
    return text if isinstance(text, str) else ""


def _completions(rows: list[dict[str, Any]], title: str) -> str:
    """The scores in columns; the question and the completion in a full-width row under each."""
    if not rows:
        return ""
    fns = sorted({fn for r in rows for fn in (r.get("rewards") or {})})
    advantages = any(r.get("advantage") is not None for r in rows)
    head = ["step", "sample", "phase", "total", *(["advantage"] if advantages else [])]
    head += [*fns, "correct", "answer", "expected"]
    body, details = [], []
    for r in rows:
        scores = [(r.get("rewards") or {}).get(fn) for fn in fns]
        body.append(
            [
                r["step"],
                r["sample"],
                r["phase"],
                r["total_reward"],
                *([r.get("advantage")] if advantages else []),
                *scores,
                r.get("correct"),
                r.get("answer"),
                r.get("true_answer"),
            ]
        )
        text = str(r.get("model_output") or "")
        cut = " …" if (r.get("length") or 0) > len(text) else ""
        talk = _conversation(r.get("messages"))
        shown = (
            f'<pre class="completion">{escape(talk)}</pre>'
            if talk
            else f'<div class="question">{escape(fmt(r.get("question")))}</div>'
            f'<pre class="completion">{escape(text + cut) if text else "(empty completion)"}</pre>'
        )
        details.append(shown)
    numeric = [True, True, False, True, *([True] if advantages else []), *([True] * len(fns))]
    return f"<h4>{escape(title)}</h4>{_table(head, body, numeric, details)}"


def _health(runs: Sequence[RunData], labels: dict[str, str]) -> str:
    """The doctor's findings, most severe first, with a few example completions each."""
    from gemmalog.doctor import steps_text

    findings = [(labels[d.run], f) for d in runs for f in d.health]
    if not findings:
        return '<p class="empty">No findings: every health check passed (gemmalog doctor).</p>'
    several = len(runs) > 1
    head = ["severity", *(["run"] if several else []), "check", "steps", "finding"]
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = []
    for label, f in findings:
        cells = [f'<td class="sev-{escape(f.severity)}">{escape(f.severity)}</td>']
        cells += [f"<td>{escape(label)}</td>"] if several else []
        cells += [
            f"<td>{escape(f.check)}</td>",
            f"<td>{escape(steps_text(f.steps) or '—')}</td>",
            f'<td class="wide">{escape(f.message)}</td>',
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
        if f.examples:
            texts = "".join(
                '<pre class="completion">'
                + escape(f"step {e.get('step', '?')}: {e['text']}")
                + "</pre>"
                for e in f.examples
            )
            body.append(
                f'<tr class="detail"><td colspan="{len(head)}"><details><summary>'
                f"{len(f.examples)} example completion(s)</summary>{texts}</details></td></tr>"
            )
    return (
        f'<div class="scroll"><table><tr>{th}</tr>{"".join(body)}</table></div>'
        '<p class="muted">From <code>gemmalog doctor</code>; thresholds in the '
        "<code>doctor:</code> section of the configuration.</p>"
    )


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{SECTIONS[key]}</h2>{body}</section>'


def _plot(svg: str | None, missing: str) -> str:
    return f'<div class="plot">{svg}</div>' if svg else f'<p class="empty">{escape(missing)}</p>'


def render(runs: Sequence[RunData]) -> str:
    """The whole page for the runs, in their order (the first run's colour is the first)."""
    labels = _sections.run_labels(runs)
    names = ", ".join(labels[d.run] for d in runs)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{k}">{escape(v)}</a>' for k, v in SECTIONS.items())
    parts = [
        _section("health", _health(runs, labels)),
        _section("runs", '<div class="runs">' + "".join(_run_card(d, i) for i, d in enumerate(runs)) + "</div>"),
        _section("loss", _plot(_sections.loss(runs, labels), "No loss was logged.")),
        _section("reward", _plot(_sections.total_reward(runs, labels), "No rewards were logged.")),
        _section("reward-functions", _plot(_sections.reward_functions(runs, labels), "No reward functions were logged.")),
        _section("accuracy", _plot(_sections.accuracy(runs, labels), "No completion was marked correct or wrong.")),
        _section("lengths", _plot(_sections.lengths(runs, labels), "No completions were logged.")),
        _section("kl-entropy", _plot(_sections.policy_metrics(runs, labels), "Neither kl nor entropy was logged.")),
        _section("memory", _plot(_sections.memory(runs, labels), "No memory samples were logged.")),
    ]  # fmt: skip
    parts.append(_section("completions", _completions_body(runs, labels)))
    parts.append(_section("non-finite", _non_finite_body(runs, labels)))
    parts.append(_section("sink-errors", _problems_body(runs, labels)))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>gemmalog report: {escape(names)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>gemmalog report</h1><p class="muted">{escape(names)} · generated {now} '
        f"by gemmalog {escape(__version__)}</p><nav>{nav}</nav></header>"
        + "".join(parts)
        + "</body></html>\n"
    )


def _completions_body(runs: Sequence[RunData], labels: dict[str, str]) -> str:
    """Each run's best and worst completions by total reward."""
    completions = [
        f"<h3>{escape(labels[d.run])}</h3>"
        + _completions(d.best, f"best {EXTREMES} by total reward")
        + _completions(d.worst, f"worst {EXTREMES} by total reward")
        for d in runs
        if d.best
    ]
    return "".join(completions) or '<p class="empty">No completion has a total reward.</p>'


def _non_finite_body(runs: Sequence[RunData], labels: dict[str, str]) -> str:
    """The metric values that are NaN or infinite, the first of each run."""
    non_finite = [
        [labels[d.run], r["rank"], r["phase"], r["step"], r["name"], r["value"]]
        for d in runs
        for r in d.non_finite
    ]
    more = [
        f"{labels[d.run]}: {d.non_finite_total - len(d.non_finite)} more not listed"
        for d in runs
        if d.non_finite_total > len(d.non_finite)
    ]
    nf_body = (
        _table(["run", "rank", "phase", "step", "metric", "value"], non_finite, [False, True, False, True])
        if non_finite
        else '<p class="empty">Every logged metric value is finite.</p>'
    )  # fmt: skip
    if more:
        nf_body += (
            f'<p class="muted">First {NON_FINITE_ROWS} per run; {escape("; ".join(more))}.</p>'
        )
    return nf_body


def _problems_body(runs: Sequence[RunData], labels: dict[str, str]) -> str:
    """Sink errors, lost or dropped events and unreadable lines, by run."""
    problems = [[labels[d.run], what, detail] for d in runs for what, detail in d.problems]
    if problems:
        return _table(["run", "what", "detail"], problems)
    return '<p class="empty">No sink errors, lost or dropped events, or unreadable lines.</p>'
