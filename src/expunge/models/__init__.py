"""Model registry and architectures. Import :func:`build_model` / :class:`ModelSpec` from here."""

from expunge.models.registry import MODELS, ModelSpec, build_model, register_model

__all__ = ["MODELS", "ModelSpec", "build_model", "register_model"]
