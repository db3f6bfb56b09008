"""Whether the query cache is used and where it lives; the numbers of its format.

The cache is on unless ``$GEMMALOG_CACHE=off`` (or ``--no-cache``); it lives beside the
shards (``<dir>/.gemmalog-cache``) or under ``$GEMMALOG_CACHE_DIR`` (``--cache-dir``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Bump when the layout of cache.json or of the parts changes.
FORMAT = 1
#: cache.json's ``content``: the entries carry the content checks of :mod:`._cache_check`
#: (a cache without them is built again; FORMAT is shared with the Parquet export's state).
CONTENT = 1
CACHE_NAME = ".gemmalog-cache"
MANIFEST = "cache.json"
GRACE_S = 600.0  # a file no manifest names is deleted only this long after (open readers)
_OFF = frozenset({"0", "off", "false", "no"})
_settings: dict[str, Any] = {}


@contextlib.contextmanager
def configured(*, enabled: bool | None = None, directory: str | None = None) -> Iterator[None]:
    """Within the block, use the cache or not (``enabled``) and keep it under ``directory``."""
    saved = dict(_settings)
    if enabled is not None:
        _settings["enabled"] = enabled
    if directory is not None:
        _settings["directory"] = directory
    try:
        yield
    finally:
        _settings.clear()
        _settings.update(saved)


def enabled() -> bool:
    """Whether ``connect`` uses the cache: not with ``$GEMMALOG_CACHE=off`` or ``--no-cache``."""
    if "enabled" in _settings:
        return bool(_settings["enabled"])
    return os.environ.get("GEMMALOG_CACHE", "").strip().lower() not in _OFF


def cache_root() -> str | None:
    """The folder holding every run's cache (``$GEMMALOG_CACHE_DIR``, ``--cache-dir``), if set."""
    value = _settings.get("directory") or os.environ.get("GEMMALOG_CACHE_DIR") or None
    return os.path.abspath(value) if value else None


def cache_dir(shard_dir: str) -> Path:
    """Where the cache of the shards in ``shard_dir`` lives."""
    base = cache_root()
    if base is None:
        return Path(shard_dir) / CACHE_NAME
    real = os.path.realpath(shard_dir)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(base) / f"{os.path.basename(real)[:64]}-{digest}"
