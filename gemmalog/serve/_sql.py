"""The server's SQL: the ``-- name: x`` blocks of the ``.sql`` files beside this module."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources


@cache
def queries(group: str) -> dict[str, str]:
    """The named queries of ``gemmalog/serve/<group>.sql``, in file order."""
    text = resources.files("gemmalog.serve").joinpath(f"{group}.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}
