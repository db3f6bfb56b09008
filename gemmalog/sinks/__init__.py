"""Sinks: where rendered events go, on the listener thread.

``TensorBoardSink`` imports the tensorboard package only when one is built. The sinks of a
configuration's handlers are built by :func:`gemmalog.sinks.factory.build_sink`.
"""

from gemmalog.sinks.base import BaseSink, Record, Sink
from gemmalog.sinks.csv import CsvSink
from gemmalog.sinks.jsonl import JsonlSink
from gemmalog.sinks.tensorboard import TensorBoardSink
from gemmalog.sinks.text import HandlerSink
from gemmalog.sinks.textformat import TextFormatter

__all__ = [
    "BaseSink",
    "CsvSink",
    "HandlerSink",
    "JsonlSink",
    "Record",
    "Sink",
    "TensorBoardSink",
    "TextFormatter",
]
