"""Integrations with training frameworks. ``gemmalog.integrations.trl`` needs the ``trl`` extra."""
