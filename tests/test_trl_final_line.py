"""The TRL callback's last line names whose answer counts it gives under several ranks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import gemmalog
from tests.helpers import read_events

pytest.importorskip("transformers")

from gemmalog.integrations.trl import GemmalogCallback


@pytest.mark.parametrize(
    ("world", "rank", "message"),
    [
        (1, 0, "Training completed"),
        (
            2,
            1,
            "Training completed (answer counts of rank 1 of 2; gemmalog summary counts every rank's)",
        ),
    ],
)
def test_training_completed_says_whose_counts(
    world: int, rank: int, message: str, root: Path
) -> None:
    run = gemmalog.initialize(root=root, capture_stdlib=False)
    callback = GemmalogCallback()
    args = SimpleNamespace(world_size=world, process_index=rank, max_steps=1)
    callback.on_train_begin(args, SimpleNamespace(global_step=0, max_steps=1), None)
    callback.on_train_end(args, SimpleNamespace(global_step=1, max_steps=1), None)
    gemmalog.shutdown()
    [done] = [e for e in read_events(run.dir) if str(e.get("event")).startswith("Training")]
    assert done["event"] == message and done["total_answers"] == 0
