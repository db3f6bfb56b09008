"""Which sinks receive an event, decided by its logger name and level as the standard library would.

A logger sends to its own handlers, then, while ``propagate`` is true, to its configured
ancestors' and finally the root's. ``logging.model.outputs`` follows ``logging.model``.
As in ``Logger.callHandlers``, a handler takes an event only at or above its own level
(a sink's ``levelno``, 0 when it has none); this is the one place handler levels are applied.
The logger's own level is checked earlier, on the caller's thread. Resolved routes are cached
per logger name and level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gemmalog.sinks.base import LEVEL_NUMBERS, Sink

_MAX_CACHED = 4096


@dataclass(frozen=True)
class Route:
    """One configured logger: its level, its handlers (sink names) and propagate."""

    level: str = "info"
    handlers: tuple[str, ...] = ()
    propagate: bool = True


@dataclass
class Router:
    """Map a logger name to the sinks that receive its events, and to its effective level."""

    sinks: dict[str, Sink]
    routes: dict[str, Route] = field(default_factory=dict)
    root: Route = field(default_factory=Route)
    always: tuple[Sink, ...] = ()
    _cache: dict[tuple[str, object], tuple[Sink, ...]] = field(
        default_factory=dict, init=False, repr=False
    )

    def _chain(self, name: str) -> list[Route]:
        """Configured routes from ``name`` up through its ancestors, then root, honouring propagate."""
        out: list[Route] = []
        probe = name
        while probe:
            route = self.routes.get(probe)
            if route is not None:
                out.append(route)
                if not route.propagate:
                    return out
            probe = probe.rpartition(".")[0]
        out.append(self.root)
        return out

    def sinks_for(self, name: str, level: object = "info") -> tuple[Sink, ...]:
        """The sinks an event of logger ``name`` at ``level`` (a level name) goes to."""
        key = (name, level)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        levelno = LEVEL_NUMBERS.get(level, 20) if type(level) is str else 20
        chosen: list[Sink] = [s for s in self.always if levelno >= getattr(s, "levelno", 0)]
        for route in self._chain(name):
            for handler in route.handlers:
                sink = self.sinks.get(handler)
                if (
                    sink is not None
                    and sink not in chosen
                    and levelno >= getattr(sink, "levelno", 0)
                ):
                    chosen.append(sink)
        result = tuple(chosen)
        if len(self._cache) >= _MAX_CACHED:  # arbitrary logger names must not grow it forever
            self._cache.clear()
        self._cache[key] = result
        return result

    def level_for(self, name: str) -> str:
        """The effective level: the nearest configured logger's, else the root's."""
        probe = name
        while probe:
            route = self.routes.get(probe)
            if route is not None:
                return route.level
            probe = probe.rpartition(".")[0]
        return self.root.level

    def levelno_for(self, name: str) -> int:
        return LEVEL_NUMBERS.get(self.level_for(name), 20)
