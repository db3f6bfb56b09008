"""Runs beyond one machine: push them to any fsspec location and back, read them where they
lie, replay them into trackio or W&B.

    from gemmalog.remote import push
    push("gemmalog_runs/my-run", "s3://bucket/runs")   # lands at s3://bucket/runs/my-run

A user of the public API and of the views (``docs/remote.md``); s3fs and the like are
imported only when a URL needs them.
"""

from typing import TYPE_CHECKING, Any

from gemmalog.remote._export import export, replay
from gemmalog.remote._fs import RemoteError, is_url, public
from gemmalog.remote._mirror import Mirror, cache_home, local_copy, local_run
from gemmalog.remote._push import ConflictError, PushStats, finished, push, runs_at, watch

if TYPE_CHECKING:
    from gemmalog.remote._inplace import remote_source


def __getattr__(name: str) -> Any:
    # remote_source needs fsspec at import: loaded when first asked for, so that a command
    # reading an up-to-date copy never imports it (docs/performance.md)
    if name == "remote_source":
        from gemmalog.remote._inplace import remote_source

        return remote_source
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConflictError",
    "Mirror",
    "PushStats",
    "RemoteError",
    "cache_home",
    "export",
    "finished",
    "is_url",
    "local_copy",
    "local_run",
    "public",
    "push",
    "remote_source",
    "replay",
    "runs_at",
    "watch",
]
