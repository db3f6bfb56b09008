"""DuckDB views over gemmalog runs: ``connect`` for SQL, ``summary`` for the numbers that matter.

    import gemmalog
    con = gemmalog.connect("gemmalog_runs")          # every run under the root
    con.sql("SELECT run, step, value FROM metrics WHERE name = 'loss'").show()

The views and their columns are documented in ``docs/queries.md``. Besides ``connect``,
``freeze``, ``summary``, ``list_runs`` and the exports, this is what the ``gemmalog`` command
itself uses (it imports nothing else of this package):

- ``resolve(path, root=)`` -> ``Source``: the shards of a run, a root, a glob or a run id;
  ``default_root()``: ``$GEMMALOG_ROOT``, else ``gemmalog_runs``.
- ``manifest_problems(con)``: the ``run.json`` files the views skipped, with the reason.
- The query cache (``gemmalog cache build|status|verify|drop``): ``cache_build(source)``,
  ``cache_status(source)`` and ``cache_verify(source)`` return one dict per shard,
  ``cache_drop(source)`` the folders removed; ``configured(enabled=, directory=)`` sets the
  cache up for a block, ``cache_enabled()`` and ``cache_root()`` say how it is set.
- ``check_output``, ``check_read_only`` and ``lock_down``: the guards of what a command
  writes and of the SQL it runs.
"""

from gemmalog.queries._cache_admin import build as cache_build
from gemmalog.queries._cache_admin import drop as cache_drop
from gemmalog.queries._cache_admin import status as cache_status
from gemmalog.queries._cache_admin import verify as cache_verify
from gemmalog.queries._cache_config import CACHE_NAME, MANIFEST, cache_root, configured
from gemmalog.queries._cache_config import enabled as cache_enabled
from gemmalog.queries._cache_memo import remembered
from gemmalog.queries._connect import (
    VIEWS,
    QueryError,
    Source,
    connect,
    default_root,
    freeze,
    manifest_problems,
    resolve,
)
from gemmalog.queries._export import to_csv, to_parquet
from gemmalog.queries._guard import check_output
from gemmalog.queries._readonly import check_read_only, lock_down
from gemmalog.queries._runs_index import list_runs
from gemmalog.queries._summary import summary

__all__ = [
    "CACHE_NAME",
    "MANIFEST",
    "VIEWS",
    "QueryError",
    "Source",
    "cache_build",
    "cache_drop",
    "cache_enabled",
    "cache_root",
    "cache_status",
    "cache_verify",
    "check_output",
    "check_read_only",
    "configured",
    "connect",
    "default_root",
    "freeze",
    "list_runs",
    "lock_down",
    "manifest_problems",
    "remembered",
    "resolve",
    "summary",
    "to_csv",
    "to_parquet",
]
