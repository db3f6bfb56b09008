"""Configuration: the seed plan's YAML format, validated before anything starts."""

from gemmalog.config.loader import (
    ConfigError,
    apply_overrides,
    env_overrides,
    load,
    parse,
    user_code,
)
from gemmalog.config.model import (
    Config,
    FormatterConfig,
    HandlerConfig,
    LoggerConfig,
    MetricsConfig,
    Settings,
    default_config,
)

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
