"""Open a location given as a path or an fsspec URL, and turn what the store answers into one
clear sentence that never quotes a key, a token or a password."""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Environment variables whose values are secrets wherever they appear.
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|SESSION", re.IGNORECASE)


class RemoteError(Exception):
    """A location gemmalog cannot read or write; the message says which and what to do."""


def is_url(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` names a location by URL (``s3://``, ``file://``, ``hf://``...)."""
    return bool(_URL.match(os.fspath(text)))


def public(url: str) -> str:
    """``url`` without the user and password a URL may carry (``https://user:pw@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url)
    if parts.password is None and parts.username is None:
        return scrub(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return scrub(urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)))


def scrub(text: str) -> str:
    """``text`` with every secret the environment holds replaced by ``***``."""
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_NAME.search(name) and value in text:
            text = text.replace(value, "***")
    return re.sub(r"(://)[^/@\s:]+:[^/@\s]+@", r"\1", text)


def filesystem(location: str | os.PathLike[str]) -> tuple[Any, str]:
    """The fsspec file system of ``location`` and the path within it.

    A plain path is the local file system (absolute). An ``s3://`` URL reads its endpoint
    from ``$AWS_ENDPOINT_URL`` and its credentials the way boto does (environment, profile,
    instance role); gemmalog never takes them as arguments, so they never reach a message.
    """
    text = os.fspath(location)
    try:
        import fsspec
    except ImportError as exc:
        raise RemoteError(
            "pushing and reading runs elsewhere needs fsspec (pip install 'gemmalog[remote]')"
        ) from exc
    if not is_url(text):
        return fsspec.filesystem("file"), os.path.abspath(text)
    protocol = text.split("://", 1)[0].lower()
    options: dict[str, Any] = {"skip_instance_cache": True}
    if protocol in ("s3", "s3a"):
        options.update(s3_settings())
    try:
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(text, **options)
    except ImportError as exc:
        package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}
        hint = package.get(protocol)
        extra = f" (pip install {hint}, or 'gemmalog[remote]')" if hint else ""
        raise RemoteError(
            f"{public(text)}: no file system for {protocol}:// is installed{extra}"
        ) from exc
    except ValueError as exc:
        raise RemoteError(
            f"{public(text)}: not a location fsspec knows ({scrub(str(exc))})"
        ) from exc
    if protocol in ("s3", "s3a"):
        fs.retries = 3  # s3fs's own retries on top of botocore's (its default: 5, with backoff)
    return fs, str(path).rstrip("/")


def s3_settings() -> dict[str, Any]:
    """Bounded timeouts and retries: a dead endpoint is an error in seconds, not minutes."""
    options: dict[str, Any] = {
        "config_kwargs": {
            "connect_timeout": 5,
            "read_timeout": 60,
            "retries": {"max_attempts": 3, "mode": "standard"},
        },
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def endpoint(location: str) -> str:
    """Where ``location``'s requests go, for messages (no credentials)."""
    if location.split("://", 1)[0].lower() in ("s3", "s3a"):
        url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return public(url) if url else "the AWS default endpoint"
    return public(location)


def _codes(exc: BaseException) -> set[str]:
    """The error codes an exception (or its causes) carries: S3's ``Error.Code``, errno names."""
    found: set[str] = set()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                found.add(str(code))
        number = getattr(current, "errno", None)
        if isinstance(number, int) and number in errno.errorcode:
            found.add(errno.errorcode[number])
        found.add(type(current).__name__)
        current = current.__cause__ or current.__context__
    return found


_REFUSED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "Forbidden",
    "403",
    "PermissionError",
    "NoCredentialsError",
    "PartialCredentialsError",
}
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ClientOSError",
    "ConnectionClosedError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "ECONNREFUSED",
    "ECONNRESET",
    "EPIPE",
    "ServerTimeoutError",
}


def refused_or_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store cannot be reached, refuses the credentials or has no
    such bucket: asking it again another way gets the same answer."""
    return bool(_codes(exc) & (_UNREACHABLE | _REFUSED | {"NoSuchBucket"}))


def explain(exc: BaseException, location: str, doing: str) -> RemoteError:
    """One sentence for what went wrong ``doing`` something at ``location``."""
    if isinstance(exc, RemoteError):
        return exc
    where = public(location)
    codes = _codes(exc)
    if codes & _UNREACHABLE:
        return RemoteError(
            f"{where}: cannot reach the store at {endpoint(location)} while {doing} "
            "(is the server up, and AWS_ENDPOINT_URL right?); nothing local was changed, "
            "and the next push continues where this one stopped"
        )
    if codes & _REFUSED:
        return RemoteError(
            f"{where}: the store at {endpoint(location)} refused the credentials or the access "
            f"while {doing} (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or "
            "the bucket's policy)"
        )
    if codes & {"NoSuchBucket", "FileNotFoundError"}:
        return RemoteError(f"{where}: no such bucket or path while {doing}")
    text = scrub(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
    return RemoteError(
        f"{where}: {doing} failed: {type(exc).__name__}{': ' + text if text else ''}"
    )


@contextlib.contextmanager
def explained(location: str, doing: str) -> Iterator[None]:
    """Raise any failure inside as a :class:`RemoteError` from :func:`explain`."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit, RemoteError):
        raise
    except Exception as exc:
        raise explain(exc, location, doing) from None


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names]) if base else "/".join(names)


__all__ = [
    "RemoteError",
    "endpoint",
    "explain",
    "explained",
    "filesystem",
    "is_url",
    "join",
    "public",
    "refused_or_unreachable",
    "s3_settings",
    "scrub",
]
