"""TensorBoard event files, one concern a module, as tensorboard's own writer splits them.

- :mod:`.sink`: :class:`TensorBoardSink`, what each event kind becomes (its tag table);
- :mod:`.tags`: tag names, numeric values and the text samples' markdown;
- :mod:`.protos`: the ``Event`` and ``Summary`` bytes of scalars and text, without protos;
- :mod:`.histogram`: a step's histogram and its ``HistogramProto`` bytes;
- :mod:`.records`: the TFRecord framing and its CRC32C (tensorboard's ``record_writer.py``);
- :mod:`.event_file`: one ``events.out.tfevents.*`` file (tensorboard's ``event_file_writer.py``).

The tensorboard package is imported only when a sink is built.
"""

from gemmalog.sinks.tensorboard.sink import TensorBoardSink

__all__ = ["TensorBoardSink"]
