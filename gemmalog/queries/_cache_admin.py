"""The ``gemmalog cache`` command's work: build, verify, show and drop the query caches of a
run's shards (:mod:`._cache_store` keeps them, :mod:`._cache` reads them at connect)."""

from __future__ import annotations

import os
import shutil
from typing import Any

from gemmalog.notices import warn_once
from gemmalog.queries._cache_config import cache_dir
from gemmalog.queries._cache_store import _DirCache
from gemmalog.queries._paths import Source


def build(source: Source) -> list[dict[str, Any]]:
    """Bring the cache of every shard of ``source`` up to date; return :func:`status`."""
    for shard_dir, shards in source.by_dir().items():
        store = _DirCache(shard_dir)
        store.sync(shards)
    return status(source)


def verify(source: Source) -> list[dict[str, Any]]:
    """Check every byte each shard's cache was built from, and every part; rebuild from the
    JSONL what does not match. Per shard: ``ok``, ``rebuilt`` or ``damaged`` (a cache that
    cannot be written: queries read that shard's JSONL), and why."""
    out: list[dict[str, Any]] = []
    for shard_dir, shards in source.by_dir().items():
        store = _DirCache(shard_dir)
        try:
            store.sync(shards, full=True)
            broken = "rebuilt"
        except OSError as exc:
            warn_once(f"query cache {store.dir} cannot be written ({exc}); checked only")
            store.usable(shards, full=True, quiet=True)
            broken = "damaged"
        for shard in shards:
            why = store.problems.get(shard)
            out.append(
                {
                    "shard": shard,
                    "state": "ok" if why is None else broken,
                    "problem": why or "",
                    "cache": str(store.dir),
                }
            )
    return out


def status(source: Source) -> list[dict[str, Any]]:
    """Per shard: its size, the bytes and rows cached, the parts, where the cache is, its state."""
    out: list[dict[str, Any]] = []
    for shard_dir, shards in source.by_dir().items():
        store = _DirCache(shard_dir)
        manifest = store.load()
        usable = store.usable(shards, quiet=True)
        for shard in shards:
            entry = manifest["shards"].get(os.path.basename(shard))
            size = os.stat(shard).st_size
            if shard in usable:
                cached = usable[shard][0]
                state = "fresh" if cached["watermark"] >= size else "behind"
            else:
                state = "none" if entry is None else "stale"
            parts = usable[shard][1] if shard in usable else []
            out.append(
                {
                    "shard": shard,
                    "size": size,
                    "cached_bytes": usable[shard][0]["watermark"] if shard in usable else 0,
                    "rows": sum(p["rows"] for p in usable[shard][0]["parts"])
                    if shard in usable
                    else 0,
                    "parts": len(parts),
                    "parquet_bytes": sum(os.path.getsize(p) for p in parts),
                    "state": state,
                    "cache": str(store.dir),
                }
            )
    return out


def drop(source: Source) -> list[str]:
    """Delete the caches of ``source``'s directories; return the folders removed."""
    removed: list[str] = []
    for shard_dir in source.by_dir():
        folder = cache_dir(shard_dir)
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
            removed.append(str(folder))
    return removed
