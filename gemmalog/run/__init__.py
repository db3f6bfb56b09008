"""A run on disk: its identity (the run id every rank of a launch agrees on), its directory
(made, locked per rank, resumed as segments) and its manifest, ``run.json``.

:class:`~gemmalog.Run` is the public handle (``gemmalog.initialize()`` returns one). The
names below are the identity rules, public for launchers and tests that need the same
answer gemmalog gives: ``shared_run_id()`` (the id a launch's ranks share, or None),
``safe_name()`` (a run name as a directory name) and ``LAUNCH_WINDOW`` (how close in time
the ranks of one launch start).
"""

from gemmalog.run._identity import LAUNCH_WINDOW, safe_name, shared_run_id

__all__ = ["LAUNCH_WINDOW", "safe_name", "shared_run_id"]
