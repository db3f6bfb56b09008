"""Sinks: where rendered events go, on the listener thread."""

from gemmalog.sinks.base import BaseSink, Record, Sink
from gemmalog.sinks.jsonl import JsonlSink
from gemmalog.sinks.text import HandlerSink, TextFormatter

__all__ = ["BaseSink", "HandlerSink", "JsonlSink", "Record", "Sink", "TextFormatter"]
