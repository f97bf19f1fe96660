"""Unlearning methods: one module each, registered by decorator, discovered automatically."""

from expunge.methods.base import (
    METHODS,
    DataAccess,
    Hyperparams,
    RunContext,
    UnlearningMethod,
    get_method,
    hp,
    register_method,
)

__all__ = ["METHODS", "DataAccess", "Hyperparams", "RunContext", "UnlearningMethod", "get_method", "hp",
           "register_method"]
