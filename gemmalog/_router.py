"""Which sinks receive an event, decided by its logger name as the standard library would.

A logger sends to its own handlers, then, while ``propagate`` is true, to its configured
ancestors' and finally the root's. ``logging.model.outputs`` follows ``logging.model``.
Resolved routes are cached per logger name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gemmalog.sinks.base import LEVEL_NUMBERS, Sink


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
    _cache: dict[str, tuple[Sink, ...]] = field(default_factory=dict, init=False, repr=False)

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

    def sinks_for(self, name: str) -> tuple[Sink, ...]:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        chosen: list[Sink] = list(self.always)
        for route in self._chain(name):
            for handler in route.handlers:
                sink = self.sinks.get(handler)
                if sink is not None and sink not in chosen:
                    chosen.append(sink)
        result = tuple(chosen)
        self._cache[name] = result
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
