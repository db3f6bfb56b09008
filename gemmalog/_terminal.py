"""Text bound for a terminal: control characters shown as escapes, never acted on.

Logged text is data. A completion or message holding ``ESC ] 0 ; title BEL`` or ``ESC [ 2 J``
would retitle or clear the terminal of whoever reads the log, a carriage return could hide
the start of a line, and bidirectional overrides could show text in an order other than the
stored one. :func:`visible` writes each of them as a Python-style escape (``\\x1b``, ``\\r``,
``\\u202e``), so the reader sees that they are there and the terminal does nothing.
"""

from __future__ import annotations

import re
from typing import Final


def _table(*, newlines: bool) -> dict[str, str]:
    codes = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
    table = {chr(c): f"\\x{c:02x}" for c in codes}
    table |= {"\r": "\\r", "\n": "\\n"}
    # Bidirectional embeddings, overrides and isolates (the "Trojan Source" characters).
    table |= {chr(c): f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
    del table["\t"]  # a tab is whitespace a terminal only moves over
    if newlines:
        del table["\n"]
    return table


def _pattern(table: dict[str, str]) -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(c) for c in table) + "]")


_KEEP_NEWLINES: Final = _table(newlines=True)
_ONE_LINE: Final = _table(newlines=False)
_KEEP_NEWLINES_RE: Final = _pattern(_KEEP_NEWLINES)
_ONE_LINE_RE: Final = _pattern(_ONE_LINE)


def visible(text: str, *, one_line: bool = False) -> str:
    """``text`` with control characters escaped; ``one_line`` escapes newlines too."""
    if text.isprintable():  # the common case, one pass in C: nothing to escape
        return text
    if one_line:
        return _ONE_LINE_RE.sub(lambda m: _ONE_LINE[m.group()], text)
    return _KEEP_NEWLINES_RE.sub(lambda m: _KEEP_NEWLINES[m.group()], text)
