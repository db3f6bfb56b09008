"""The engine of one run: the caller's processors, the queue, the listener thread, the
router and the sinks' health (docs/architecture.md, "The path of one event").

Everything here is internal; :class:`Router` and :class:`Route` (which handlers take an
event, by its logger and level, as the standard library's handlers would) are named here
for the tests that check the routing on its own.
"""

from gemmalog.engine._router import Route, Router

__all__ = ["Route", "Router"]
