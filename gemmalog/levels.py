"""Level names and numbers, in one place: the standard library's, lower-case.

Every part of gemmalog that names or compares levels (the envelope, the router, the text
sinks, the configuration loader, the CLI's filters) reads them here.
"""

from __future__ import annotations

from typing import Final

#: Level names, lowest first.
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
#: Level name -> the standard library's number.
LEVEL_NUMBERS: Final = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
#: The standard library's number -> level name (NOTSET reads as debug).
NUMBER_LEVELS: Final = {0: "debug", **{n: name for name, n in LEVEL_NUMBERS.items()}}
#: Other spellings the standard library accepts.
ALIASES: Final = {"warn": "warning", "fatal": "critical", "notset": "debug"}
#: A logger method's name -> the level it logs at (``log.exception`` logs errors).
METHOD_LEVELS: Final = {
    **{name: name for name in LEVELS},
    **{alias: level for alias, level in ALIASES.items() if alias != "notset"},
    "msg": "info",
    "exception": "error",
}
