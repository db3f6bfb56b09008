"""Configuration: the seed plan's YAML format, validated before anything starts."""

from gemmalog.config.loader import ConfigError, load, parse
from gemmalog.config.model import (
    Config,
    FormatterConfig,
    HandlerConfig,
    LoggerConfig,
    MetricsConfig,
    Settings,
    default_config,
)
from gemmalog.config.overrides import apply_overrides, env_overrides, user_code

__all__ = [
    "Config",
    "ConfigError",
    "FormatterConfig",
    "HandlerConfig",
    "LoggerConfig",
    "MetricsConfig",
    "Settings",
    "apply_overrides",
    "default_config",
    "env_overrides",
    "load",
    "parse",
    "user_code",
]
