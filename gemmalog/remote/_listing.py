"""One listing of a remote run or root, with what identifies each file's content: the check
that lets a local copy skip every other request when nothing changed.

A file is known unchanged only by a marker its store changes with every write (S3's ETag and
LastModified, GCS's generation, Azure's etag, the Hub's blob id); the size alone proves
nothing (a file rewritten in place keeps it). A store whose listing carries no such marker
gets None, and its copy is brought up to date the long way every time.

For ``s3://`` the listing is asked of botocore directly: s3fs (with aiobotocore and aiohttp)
takes about half a second to import, botocore a third of that, and a copy that is up to date
needs nothing else (docs/performance.md).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from gemmalog.remote._fs import filesystem, s3_settings
from gemmalog.remote._store import ignored

#: What a file's listing entry is compared by: its size and its store's content markers.
Version = list[Any]
#: Fields of fsspec's listing entries that change with every write of a file.
_MARKERS = ("ETag", "etag", "LastModified", "last_modified", "generation", "md5Hash", "blob_id")


def versions(location: str) -> dict[str, Version] | None:
    """Every file under ``location`` (a URL) a push would copy, by its path there, with its
    size and content markers; None when the store's listing has no marker for some file.

    Raises what the store raises (the caller explains it).
    """
    protocol = location.split("://", 1)[0].lower()
    if protocol in ("s3", "s3a") and "?" not in location and not _fsspec_configures(protocol):
        try:
            return _s3(location)
        except ImportError:  # botocore comes with s3fs; without either, fsspec says why
            pass
    return _fsspec(location)


def _fsspec_configures(protocol: str) -> bool:
    """Whether fsspec's configuration (``FSSPEC_<PROTOCOL>_*``, files in its config folder)
    may give s3fs settings botocore alone would not see: then fsspec lists."""
    prefix = f"FSSPEC_{protocol.upper()}"
    if any(name.upper().startswith(prefix) for name in os.environ):
        return True
    folder = os.environ.get("FSSPEC_CONFIG_DIR") or os.path.join(
        os.path.expanduser("~"), ".config", "fsspec"
    )
    try:
        return any(name.endswith((".json", ".ini")) for name in os.listdir(folder))
    except OSError:
        return False


_SETTINGS = ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_REGION", "AWS_DEFAULT_REGION")
_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
#: botocore clients by the settings they were made with (a client takes 0.1 s to make).
_clients: dict[tuple[str | None, ...], Any] = {}


def _client() -> Any:
    import botocore.session
    from botocore.config import Config

    settings = s3_settings()
    # the variables botocore reads (secrets by a digest: the key stays in this process alone)
    key = (
        settings.get("endpoint_url"),
        *(os.environ.get(name) for name in _SETTINGS),
        *(hashlib.sha256(os.environ.get(name, "").encode()).hexdigest() for name in _SECRETS),
    )
    client = _clients.get(key)
    if client is None:
        session = botocore.session.get_session()
        client = session.create_client(
            "s3",
            endpoint_url=settings.get("endpoint_url"),
            config=Config(**settings["config_kwargs"]),
        )
        _clients.clear()  # one set of settings at a time
        _clients[key] = client
    return client


def _s3(location: str) -> dict[str, Version]:
    bucket, _, key = location.split("://", 1)[1].partition("/")
    prefix = key.strip("/") + "/" if key.strip("/") else ""
    out: dict[str, Version] = {}
    for page in _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", ()):
            rel = str(entry["Key"])[len(prefix) :]
            if rel and not rel.endswith("/") and not ignored(rel):
                out[rel] = [
                    int(entry["Size"]),
                    str(entry.get("ETag")),
                    entry["LastModified"].isoformat(),
                ]
    return out


def _fsspec(location: str) -> dict[str, Version] | None:
    fs, path = filesystem(location)
    try:
        found = fs.find(path, detail=True)
    except FileNotFoundError:
        return {}
    prefix = path.rstrip("/") + "/"
    out: dict[str, Version] = {}
    for name, info in found.items():
        if info.get("type") == "directory" or not name.startswith(prefix):
            continue
        rel = name[len(prefix) :]
        if ignored(rel):
            continue
        markers = [str(info[k]) for k in _MARKERS if info.get(k) is not None]
        if not markers:
            return None
        out[rel] = [int(info.get("size") or 0), *markers]
    return out


__all__ = ["Version", "versions"]
