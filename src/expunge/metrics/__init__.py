"""Metrics: one module per family, each registering :class:`~expunge.metrics.base.Metric` classes; pure array
functions live in :mod:`expunge.metrics.functional`."""

from expunge.metrics.base import METRICS, EvalContext, Metric, MetricValue, Tier, evaluate, register_metric

__all__ = ["METRICS", "EvalContext", "Metric", "MetricValue", "Tier", "evaluate", "register_metric"]
