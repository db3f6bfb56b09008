"""The configuration, as plain dataclasses: what a YAML file or keyword arguments produce.

The layout follows the seed plan's ``gemma_logging_config.yaml`` (a ``logging.config``
dictConfig-style file: ``loggers``, ``root``, ``handlers``, ``formatters``) plus its
``metrics`` section and an optional ``gemmalog`` section for the pipeline's own settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gemmalog.events import DEFAULT_LOGGER_NAMES, ROLES
from gemmalog.formats import STANDARD_DATEFMT, STANDARD_FORMAT


@dataclass
class FormatterConfig:
    """``format``/``datefmt`` as in ``logging.Formatter``; ``format: json`` writes JSON lines."""

    format: str = STANDARD_FORMAT
    datefmt: str | None = STANDARD_DATEFMT
    json: bool = False
    fields: tuple[str, ...] = ("timestamp", "level", "name", "message")


@dataclass
class HandlerConfig:
    """One handler: its canonical type (console, file, rotating_file, csv, tensorboard, null)."""

    name: str
    type: str
    level: str = "debug"
    formatter: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    class_name: str = ""


@dataclass
class LoggerConfig:
    level: str = "info"
    handlers: tuple[str, ...] = ()
    propagate: bool = True


@dataclass
class MetricsConfig:
    """The seed plan's ``metrics`` section, read by the integrations."""

    logging_frequency: int = 5
    validation_frequency: int = 250
    sampling_ratio: float = 0.1
    gradient_frequency: int = 20
    #: Per-completion token log-probability and entropy statistics from TRL's loss pass (the
    #: TRL callback's ``log_token_stats``; off: nothing is hooked).
    log_token_stats: bool = False
    enable: dict[str, bool] = field(
        default_factory=lambda: {
            "reward_metrics": True,
            "generation_metrics": True,
            "validation_metrics": True,
            "resource_metrics": True,
        }
    )

    def enabled(self, category: str) -> bool:
        """Whether a metric category (reward_metrics, generation_metrics, ...) is on."""
        return self.enable.get(category, True)


#: ``gemmalog doctor``'s checks, in report order (each one rule; see docs/doctor.md).
DOCTOR_CHECKS = (
    "reward_hacking", "format_saturated", "reward_dominance",
    "entropy_collapse", "diversity_collapse", "identical_completions",
    "length_clipping", "length_collapse", "zero_signal",
    "metric_outliers", "non_finite", "reward_none",
    "memory_growth", "step_time_drift", "dropped_events", "sink_errors", "unreadable_lines",
    "run_failed",
)  # fmt: skip
SEVERITIES = ("info", "warning", "error")


@dataclass
class DoctorConfig:
    """The ``doctor:`` section: thresholds of the health checks (docs/doctor.md explains each).

    ``checks`` maps a check name to ``off`` or to the severity its findings get
    (``info``, ``warning``, ``error``), overriding the check's own.
    """

    checks: dict[str, str] = field(default_factory=dict)
    live: bool = False
    min_steps: int = 8
    window: float = 0.25
    examples: int = 3
    reward_rise: float = 0.5
    accuracy_gain: float = 0.05
    format_pattern: str = "format|xml|tag"
    format_saturation: float = 0.9
    correctness_floor: float = 0.05
    dominance_share: float = 0.8
    entropy_floor: float = 0.05
    entropy_drop: float = 0.8
    distinct_drop: float = 0.5
    repetition_rise: float = 0.3
    duplicate_share: float = 0.5
    clipped_ratio: float = 0.5
    length_drop: float = 0.6
    zero_std_share: float = 0.8
    zero_std_steps: int = 5
    outlier_metrics: tuple[str, ...] = ("loss", "grad_norm", "kl")
    outlier_z: float = 8.0
    outlier_range: float = 10.0
    outlier_window: int = 20
    memory_growth: float = 0.25
    memory_min_mb: float = 64.0
    memory_r2: float = 0.8
    step_time_drift: float = 1.5


@dataclass
class Settings:
    """The pipeline's own settings (the ``gemmalog:`` section, keywords, GEMMALOG_* variables)."""

    root: str = "gemmalog_runs"
    run_name: str | None = None
    run_id: str | None = None
    flush_interval: float = 0.5
    queue_size: int = 10_000
    backpressure: str = "block"
    fsync: bool = False
    redact: bool = True
    redact_patterns: tuple[str, ...] = ()
    memory_interval: float = 1.0
    #: Seconds between two samples of the GPU counters (NVML; nothing without it).
    gpu_interval: float = 10.0
    max_string_length: int = 1_000_000
    capture_stdlib: bool = True
    capture_warnings: bool = True
    private: bool = True
    #: Dotted paths of user processors, caller side and listener side (docs/architecture.md).
    processors: tuple[str, ...] = ()
    listener_processors: tuple[str, ...] = ()


@dataclass
class SyncConfig:
    """The ``sync:`` section: push the run to ``dest`` from a background worker while it
    trains (docs/remote.md). ``dest`` None: no sync."""

    dest: str | None = None
    interval: float = 30.0
    final_timeout: float = 60.0


@dataclass
class Config:
    """Everything :func:`gemmalog.initialize` needs."""

    settings: Settings = field(default_factory=Settings)
    root: LoggerConfig = field(default_factory=LoggerConfig)
    loggers: dict[str, LoggerConfig] = field(default_factory=dict)
    handlers: dict[str, HandlerConfig] = field(default_factory=dict)
    formatters: dict[str, FormatterConfig] = field(default_factory=dict)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    doctor: DoctorConfig = field(default_factory=DoctorConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    source: Path | None = None

    def role_loggers(self) -> dict[str, str]:
        """Role (training, model, ...) -> logger name: a configured logger whose last dotted
        component is the role wins (the seed's ``logging.training``), else ``gemmalog.<role>``."""
        out = dict(DEFAULT_LOGGER_NAMES)
        for name in self.loggers:
            last = name.rpartition(".")[2]
            if last in ROLES:
                out[last] = name
        return out

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy for ``run.json`` and ``run_start``."""
        data = asdict(self)
        data["source"] = None if self.source is None else str(self.source)
        return data


def default_config() -> Config:
    """No file given: JSONL for everything, the console for training and system messages."""
    config = Config()
    config.handlers["console"] = HandlerConfig(
        "console", "console", level="info", formatter="standard", class_name="logging.StreamHandler"
    )
    config.formatters["standard"] = FormatterConfig()
    config.root = LoggerConfig("info", ("console",))
    for role in ("model", "reward", "metrics"):
        config.loggers[DEFAULT_LOGGER_NAMES[role]] = LoggerConfig("info", (), propagate=False)
    return config
