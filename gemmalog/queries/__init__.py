"""DuckDB views over gemmalog runs: ``connect`` for SQL, ``summary`` for the numbers that matter.

    import gemmalog
    con = gemmalog.connect("gemmalog_runs")          # every run under the root
    con.sql("SELECT run, step, value FROM metrics WHERE name = 'loss'").show()

The views and their columns are documented in ``docs/queries.md``.
"""

from gemmalog.queries._cache_config import CACHE_NAME, MANIFEST, configured
from gemmalog.queries._cache_memo import remembered
from gemmalog.queries._connect import VIEWS, QueryError, Source, connect, freeze, resolve
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
    "check_output",
    "check_read_only",
    "configured",
    "connect",
    "freeze",
    "list_runs",
    "lock_down",
    "remembered",
    "resolve",
    "summary",
    "to_csv",
    "to_parquet",
]
