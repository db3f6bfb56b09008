"""The event kinds gemmalog writes, declared once.

Every JSON line carries the envelope fields, then the fields of its kind. The DuckDB
views, the derived CSV, the JSON Schema and the schema reference in ``docs/events.md``
(:mod:`gemmalog.event_schema`) are all derived from, or tested against, the declarations below:
change a field here and everything downstream follows.

Types are DuckDB types. Floating-point values that are not finite are written as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (strict JSON parsers accept them as
strings, DuckDB casts them back to DOUBLE), never as ``null``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

SCHEMA_VERSION: Final = 1

#: How a JSON line writes a float that is not finite (strict JSON has no NaN or Infinity).
NAN: Final = "NaN"
POS_INF: Final = "Infinity"
NEG_INF: Final = "-Infinity"
#: Those strings -> the floats they stand for.
NON_FINITE: Final = {NAN: math.nan, POS_INF: math.inf, NEG_INF: -math.inf}


def nonfinite_text(value: float) -> str:
    """The string that stands for a non-finite float in every output (JSONL, CSV, tables)."""
    if value != value:
        return NAN
    return POS_INF if value > 0 else NEG_INF


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event: its JSON key, its DuckDB type and what it means."""

    name: str
    sql: str
    doc: str


@dataclass(frozen=True, slots=True)
class Kind:
    """An event kind: its name, the logger role that emits it, and its fields."""

    name: str
    doc: str
    role: str
    fields: tuple[Field, ...]

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


ENVELOPE: Final = (
    Field("v", "INTEGER", "Schema version of the line (currently 1)."),
    Field(
        "ts", "DOUBLE", "Unix time in seconds when the event was created on the caller's thread."
    ),
    Field("kind", "VARCHAR", "The event kind, one of the kinds below."),
    Field(
        "logger", "VARCHAR", "Name of the logger that emitted the event (e.g. gemmalog.training)."
    ),
    Field("level", "VARCHAR", "debug, info, warning, error or critical."),
    Field("run", "VARCHAR", "Run id; every rank of one job shares it."),
    Field(
        "rank", "INTEGER", "Global rank of the emitting process (0 without distributed training)."
    ),
    Field("step", "BIGINT", "Global optimizer step the event belongs to, when known."),
    Field("epoch", "DOUBLE", "Fractional epoch, when bound."),
    Field(
        "event", "VARCHAR", "The message; typed events carry their kind's name when none is given."
    ),
    Field(
        "device",
        "VARCHAR",
        "Accelerator in use: cpu, cuda:N or mps (cached, refreshed on the memory interval).",
    ),
    Field(
        "rss_mb", "DOUBLE", "Process resident memory in MiB, sampled at most every memory interval."
    ),
    Field(
        "gpu_mb",
        "DOUBLE",
        "CUDA or MPS memory allocated by torch in MiB, when torch is imported and a GPU is in use.",
    ),
    Field(
        "truncated", "VARCHAR[]", "Fields whose text was cut at the configured max_string_length."
    ),
    Field(
        "segment",
        "INTEGER",
        "Segment of a resumed run: absent (read as 0) in the first, n after the n-th resumption.",
    ),
)

#: The envelope fields every line keeps, even when the rest of an event cannot be written.
CORE_FIELDS: Final = ("v", "ts", "kind", "logger", "level", "run", "rank", "step")

#: Fields only gemmalog sets: the envelope's own (``v``, ``ts``, ``level``, ``run``, ``rank``,
#: renamed by the envelope processor), the kind, the logger's name, the message, what the
#: resources processor and the truncation and segment stamps add, and the private fields
#: the helpers hand to the listener. Keywords are data: a user field of one of these names
#: (a keyword of a log call, a bound value, a ``log_event`` field, a stdlib ``extra``) is
#: kept under its name with ``_`` appended (``event_``, ``kind_``, ``logger_``, ...; more
#: ``_`` while that name is taken too). ``step``, ``epoch`` and ``phase`` are the caller's
#: to set.
#: The envelope's own fields: the envelope processor renames a user field of one of these
#: names, given or bound (gemmalog.processors.envelope.RESERVED).
ENVELOPE_OWN: Final = frozenset({"v", "ts", "level", "run", "rank"})
SET_BY_GEMMALOG: Final = frozenset(
    {
        *ENVELOPE_OWN,
        *("kind", "logger", "event"),
        *("device", "rss_mb", "gpu_mb", "truncated", "segment"),
        *("_expand", "_generations", "_token_lengths", "_max_tokens"),
    }
)


def free_name(fields: dict[str, Any], name: str) -> str:
    """``name`` with ``_`` appended, more while ``fields`` already has that name."""
    name += "_"
    while name in fields:
        name += "_"
    return name


def as_user_fields(fields: dict[str, Any], keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``fields`` (a caller's keywords) with each name in :data:`SET_BY_GEMMALOG` but those
    in ``keep`` renamed by :func:`free_name`; ``fields`` itself when none is (the common
    case: one ``isdisjoint``)."""
    if SET_BY_GEMMALOG.isdisjoint(fields):
        return fields
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in SET_BY_GEMMALOG and name not in keep:
            name = free_name(fields, name)
            while name in out:
                name += "_"
        out[name] = value
    return out


_PHASE = Field("phase", "VARCHAR", "train or eval (TRL's eval_ prefix), or another phase name.")

KINDS: Final[dict[str, Kind]] = {
    k.name: k
    for k in (
        Kind(
            "log",
            "A free text line: gemmalog loggers, the standard library (transformers, trl, "
            "datasets) and warnings. Extra keyword fields are kept as they are.",
            "training",
            (Field("exc", "VARCHAR", "Formatted exception and traceback, when one was logged."),),
        ),
        Kind(
            "run_start",
            "The run began: what ran, where, with which configuration and versions.",
            "system",
            (
                Field("name", "VARCHAR", "Human-readable run name."),
                Field("run_dir", "VARCHAR", "Directory holding the run's files."),
                Field("config", "JSON", "Snapshot of the gemmalog configuration."),
                Field(
                    "versions",
                    "JSON",
                    "Versions of python, gemmalog, structlog and of torch/transformers/trl when present.",
                ),
                Field("host", "VARCHAR", "Host name."),
                Field("pid", "INTEGER", "Process id."),
                Field("world_size", "INTEGER", "Number of ranks in the job."),
                Field(
                    "model_name", "VARCHAR", "Model name or path (from the training integration)."
                ),
                Field(
                    "num_parameters",
                    "BIGINT",
                    "Parameter count of the model (from the training integration).",
                ),
                Field(
                    "dataset_size",
                    "BIGINT",
                    "Number of training examples (from the training integration).",
                ),
                Field(
                    "training_args",
                    "JSON",
                    "TrainingArguments/GRPOConfig snapshot (from the training integration).",
                ),
            ),
        ),
        Kind(
            "run_end",
            "The run stopped: how, after how long, and what the pipeline counted.",
            "system",
            (
                Field("status", "VARCHAR", "completed, interrupted or failed."),
                Field("duration_s", "DOUBLE", "Seconds from initialize() to shutdown()."),
                Field("events", "BIGINT", "Events accepted by the queue on this rank."),
                Field("drops", "BIGINT", "Events dropped by the 'drop' backpressure policy."),
                Field("error", "VARCHAR", "Exception type and message when the run failed."),
                Field(
                    "final_stats",
                    "JSON",
                    "Final statistics from the training integration (accuracy, correct/total answers, ...).",
                ),
            ),
        ),
        Kind(
            "metrics",
            "Training progress: named numeric values at a step.",
            "metrics",
            (_PHASE, Field("metrics", "MAP(VARCHAR, DOUBLE)", "Metric name to value.")),
        ),
        Kind(
            "model_output",
            "One completion with its question, reference answer, extracted parts and per-reward scores.",
            "model",
            (
                _PHASE,
                Field("sample", "INTEGER", "Index of the sample within its batch."),
                Field(
                    "prompt", "VARCHAR", "The full prompt text, when it differs from the question."
                ),
                Field("question", "VARCHAR", "The question asked."),
                Field("true_answer", "VARCHAR", "The reference answer."),
                Field("model_output", "VARCHAR", "The completion text."),
                Field("reasoning", "VARCHAR", "Reasoning extracted from the completion."),
                Field("answer", "VARCHAR", "Answer extracted from the completion."),
                Field(
                    "rewards",
                    "MAP(VARCHAR, DOUBLE)",
                    "Reward function name to this sample's score.",
                ),
                Field("total_reward", "DOUBLE", "Sum of the (weighted) rewards, when known."),
                Field("correct", "BOOLEAN", "Whether the answer is correct, when known."),
                Field("length_chars", "INTEGER", "Completion length in characters."),
                Field("length_tokens", "INTEGER", "Completion length in tokens, when known."),
                Field(
                    "advantage",
                    "DOUBLE",
                    "The GRPO advantage of this completion, when known (TRL integration).",
                ),
                Field(
                    "advantage_source",
                    "VARCHAR",
                    "trl: the value GRPOTrainer used, read from it; computed: TRL's formula "
                    "applied to the logged rewards (the trainer's value was out of reach).",
                ),
                Field(
                    "extra",
                    "JSON",
                    "Column name to value: what reward functions logged for this completion "
                    "through TRL's log_extra.",
                ),
                Field(
                    "messages",
                    "JSON",
                    "The whole conversation when prompt or completion is a chat message list: "
                    "the prompt's messages, then the completion's, as given (tool calls and "
                    'tool results included; images as "<image>").',
                ),
                Field(
                    "prompt_turns",
                    "INTEGER",
                    "How many of the first messages are the prompt; the rest are the completion.",
                ),
            ),
        ),
        Kind(
            "token_stats",
            "One completion's token statistics in TRL's loss pass (the TRL callback's "
            "log_token_stats, off by default); phase, step and sample are its model_output's.",
            "metrics",
            (
                _PHASE,
                Field("sample", "INTEGER", "Index of the sample within its batch."),
                Field("tokens", "INTEGER", "Completion tokens the loss pass scored."),
                Field(
                    "logp_mean",
                    "DOUBLE",
                    "Mean log-probability of the completion's tokens under the policy of its "
                    "first loss pass, at TRL's temperature (nats).",
                ),
                Field("logp_min", "DOUBLE", "Lowest log-probability among its tokens."),
                Field(
                    "entropy_mean",
                    "DOUBLE",
                    "Mean entropy of the next-token distributions its tokens were scored "
                    "under (nats; TRL's entropy metric is the token-weighted mean of these).",
                ),
            ),
        ),
        Kind(
            "reward",
            "One reward function's values for a batch of samples.",
            "reward",
            (
                _PHASE,
                Field("reward_fn", "VARCHAR", "Reward function name."),
                Field("values", "DOUBLE[]", "One value per sample."),
                Field("samples", "VARCHAR[]", "Sample identifiers, aligned with values."),
            ),
        ),
        Kind(
            "reward_summary",
            "Per-function statistics of rewards at a step.",
            "reward",
            (
                _PHASE,
                Field(
                    "stats",
                    "MAP(VARCHAR, STRUCT(mean DOUBLE, std DOUBLE, min DOUBLE, max DOUBLE, count BIGINT))",
                    "Reward function name to mean, std, min, max and count of its values.",
                ),
            ),
        ),
        Kind(
            "generation_metrics",
            "Quality statistics of a batch of generations.",
            "metrics",
            (
                _PHASE,
                Field("count", "INTEGER", "Number of generations measured."),
                Field("mean_length_chars", "DOUBLE", "Mean completion length in characters."),
                Field("min_length_chars", "INTEGER", "Shortest completion in characters."),
                Field("max_length_chars", "INTEGER", "Longest completion in characters."),
                Field(
                    "mean_length_tokens",
                    "DOUBLE",
                    "Mean completion length in tokens, when token ids are known.",
                ),
                Field(
                    "truncation_rate",
                    "DOUBLE",
                    "Share of completions that hit the length limit, when known.",
                ),
                Field("distinct_1", "DOUBLE", "Distinct unigrams / all unigrams over the batch."),
                Field("distinct_2", "DOUBLE", "Distinct bigrams / all bigrams over the batch."),
                Field(
                    "repeated_ngram_ratio",
                    "DOUBLE",
                    "Mean share of repeated 3-grams within a completion.",
                ),
                Field(
                    "format_adherence",
                    "DOUBLE",
                    "Share of completions in the <reasoning>/<answer> format.",
                ),
                Field(
                    "answer_extraction_rate",
                    "DOUBLE",
                    "Share of completions from which an answer was extracted.",
                ),
            ),
        ),
        Kind(
            "system",
            "Memory and device sample; a GPU sample (event gpu) has one device's counters.",
            "system",
            (
                Field("cpu_rss_mb", "DOUBLE", "Process resident memory in MiB."),
                Field(
                    "cpu_percent",
                    "DOUBLE",
                    "Process CPU use since the previous sample, in percent of one core.",
                ),
                Field("cuda_allocated_mb", "DOUBLE", "torch.cuda.memory_allocated in MiB."),
                Field("cuda_reserved_mb", "DOUBLE", "torch.cuda.memory_reserved in MiB."),
                Field("cuda_peak_mb", "DOUBLE", "torch.cuda.max_memory_allocated in MiB."),
                Field("mps_allocated_mb", "DOUBLE", "torch.mps.current_allocated_memory in MiB."),
                Field(
                    "tokens_per_second",
                    "DOUBLE",
                    "Training throughput, when the integration knows it.",
                ),
                Field(
                    "gpu_index",
                    "INTEGER",
                    "A GPU sample (event gpu, through NVML): the device's index among the "
                    "visible ones (cuda:N).",
                ),
                Field("gpu_uuid", "VARCHAR", "A GPU sample: the device's UUID."),
                Field("gpu_name", "VARCHAR", "A GPU sample: the device's product name."),
                Field(
                    "gpu_utilization_percent",
                    "DOUBLE",
                    "A GPU sample: percent of the last sample period a kernel ran.",
                ),
                Field("gpu_memory_used_mb", "DOUBLE", "A GPU sample: device memory in use, MiB."),
                Field("gpu_memory_total_mb", "DOUBLE", "A GPU sample: device memory, MiB."),
                Field("gpu_power_w", "DOUBLE", "A GPU sample: power draw in watts."),
                Field("gpu_temperature_c", "DOUBLE", "A GPU sample: core temperature in °C."),
            ),
        ),
    )
}

#: Logger role -> default logger name. A configuration may rename them (the seed plan's
#: YAML uses ``logging.training`` ...): roles resolve by the last dotted component.
ROLES: Final = ("training", "model", "reward", "system", "metrics")
DEFAULT_LOGGER_NAMES: Final = {role: f"gemmalog.{role}" for role in ROLES}


def columns(kind: str) -> dict[str, str]:
    """Return ``{field: duckdb_type}`` for the envelope plus one kind's fields."""
    out = {f.name: f.sql for f in ENVELOPE}
    out.update({f.name: f.sql for f in KINDS[kind].fields})
    return out


def all_columns() -> dict[str, str]:
    """Return ``{field: duckdb_type}`` over the envelope and every kind.

    A field name used by two kinds has one type everywhere (checked by the tests), so the
    union is well defined.
    """
    out = {f.name: f.sql for f in ENVELOPE}
    for kind in KINDS.values():
        for f in kind.fields:
            out.setdefault(f.name, f.sql)
    return out
