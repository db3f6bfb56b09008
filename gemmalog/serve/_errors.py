"""What the server answers when a request cannot be: an HTTP status and one sentence."""

from __future__ import annotations


class ServeError(Exception):
    """A request the server answers with an error: ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def unknown_run(run_id: str) -> ServeError:
    return ServeError(404, f"unknown run {run_id!r}: no run with that id under the served roots")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
