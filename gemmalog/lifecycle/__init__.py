"""The process around a run: ``initialize()`` and ``shutdown()``, the process hooks
(atexit, ``sys.excepthook``, ``sys.exit``, SIGTERM), children (fork, spawn) and the
standard-library bridge, and what is running in this process. Internal: the public names
are in :mod:`gemmalog`."""
