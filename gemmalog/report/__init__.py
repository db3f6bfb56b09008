"""One self-contained HTML report of one or more runs: plots, best and worst completions, problems.

    from gemmalog.report import build_report
    build_report(["gemmalog_runs/baseline", "gemmalog_runs/tuned"], "report.html")

Needs matplotlib (``pip install 'gemmalog[report]'``), imported only when a report is built.
Everything is read through the DuckDB views of :mod:`gemmalog.queries`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gemmalog.report._html import SECTIONS
from gemmalog.report._plots import PlotUnavailable, require


class ReportError(Exception):
    """A report that cannot be built; the message says which path or package and why."""


def build_report(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the HTML report of the runs under ``paths`` to ``output`` and return its path.

    ``paths`` is one or more of what :func:`gemmalog.connect` accepts (run directories, run
    ids under ``root``, roots of runs, globs); several runs are overlaid in every plot.
    The file needs no network: plots are inline SVG, styles inline, no script. Raises
    ``gemmalog.queries.QueryError`` for a path with no run or an ``output`` that is, or lies
    in, any run's files, and :class:`ReportError` when matplotlib is missing.
    """
    from gemmalog.queries import check_output, resolve
    from gemmalog.report._data import load
    from gemmalog.report._html import render

    try:
        require()
    except PlotUnavailable as exc:
        raise ReportError(str(exc)) from exc
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise ReportError("no run given: name at least one run directory or run id")
    # Checked before the work: the report may not land on any run's files.
    out = check_output(output, sources=[resolve(p, root=root) for p in items], root=root)
    runs = load(items, root=root)
    if not runs:
        raise ReportError(f"{', '.join(os.fspath(p) for p in items)}: holds no run")
    page = render(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


__all__ = ["SECTIONS", "ReportError", "build_report"]
