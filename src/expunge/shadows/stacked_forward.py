"""The forward pass of K same-architecture models at once, written with grouped convolutions and batched matmuls.

``vmap(functional_call(model, ...))`` runs K models on (K, B, ...) inputs, but on CPU each of its batching rules
moves the model dimension back to the front: a convolution becomes a grouped convolution on a (B, K·C, H, W)
tensor, and the ReLU and max-pool after it then see a permuted copy (B, K·C, H, W) → (K, B, C, H, W) → (K·B, C, H, W);
the max-pool rule also runs its kernel twice per call. Profiled on the digits CNN (K = 8, one thread) that made the
batched max-pool cost twice the K separate ones, and the batched step no faster than K separate steps.

This module traces the model once with ``torch.fx`` and runs the traced graph on stacked parameters itself,
keeping each value in the layout its consumer wants:

* **grouped** ``(B, K·C, H, W)``: the layout of a grouped convolution's output. Channel-wise ops (ReLU,
  max/avg pooling) act on it as they are — model k owns channels [k·C, (k+1)·C) — so the convolution stages need
  no copies at all;
* **stacked** ``(K, B, ...)``: dense layers are one ``baddbmm`` over K; ``flatten(x, 1)`` turns a grouped
  (B, K·C, H, W) value into stacked (K, B, C·H·W), in the per-model (C, H, W) order.

Supported nodes: ``Conv2d`` (zero padding), ``Linear``, ``ReLU``/``relu``, ``MaxPool2d``/``max_pool2d`` and
``AvgPool2d``/``avg_pool2d`` without indices, ``adaptive_avg_pool2d``, ``Flatten``/``flatten(x, 1)``, ``Identity``,
dropout with p = 0 and ``+`` of two values. :func:`compile_stacked_forward` returns None for anything else (the
caller falls back to ``vmap``), so an unknown architecture is slower, never wrong. Equality with the per-model
forward pass is tested (``tests/test_shadows.py``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

StackedForward = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


class _Unsupported(Exception):
    pass


@dataclass
class _Val:
    t: torch.Tensor
    grouped: bool  # True: (B, K·C, H, W); False: (K, B, ...)


def _grouped(v: _Val, k: int) -> torch.Tensor:
    if v.grouped:
        return v.t
    if v.t.dim() != 5:
        raise _Unsupported(f"a spatial op on a value of shape {tuple(v.t.shape)}")
    _, b, c, h, w = v.t.shape
    return v.t.transpose(0, 1).reshape(b, k * c, h, w)


def _stacked(v: _Val, k: int) -> torch.Tensor:
    if not v.grouped:
        return v.t
    b, kc, h, w = v.t.shape
    return v.t.view(b, k, kc // k, h, w).transpose(0, 1)


_RELU = {F.relu, torch.relu}
_ELEMENTWISE_ADD = {operator.add, torch.add}


def _pool(fn: Callable[..., torch.Tensor], v: _Val, k: int, *args: Any, **kwargs: Any) -> _Val:
    if kwargs.get("return_indices"):
        raise _Unsupported("pooling with indices")
    return _Val(fn(_grouped(v, k), *args, **kwargs), True)


def _flatten(v: _Val, k: int, start: int, end: int) -> _Val:
    if start != 1 or end != -1:
        raise _Unsupported(f"flatten({start}, {end})")
    t = _stacked(v, k)
    return _Val(t.reshape(t.shape[0], t.shape[1], -1), False)


def _linear(v: _Val, k: int, w: torch.Tensor, b: torch.Tensor | None) -> _Val:
    t = _stacked(v, k)
    lead = t.shape[:-1]
    x = t.reshape(k, -1, t.shape[-1])
    out = torch.bmm(x, w.transpose(1, 2)) if b is None else torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
    return _Val(out.reshape(*lead, w.shape[1]), False)


def _conv(v: _Val, k: int, mod: nn.Conv2d, w: torch.Tensor, b: torch.Tensor | None) -> _Val:
    if mod.padding_mode != "zeros":
        raise _Unsupported(f"padding_mode={mod.padding_mode!r}")
    weight = w.reshape(k * w.shape[1], *w.shape[2:])
    bias = None if b is None else b.reshape(-1)
    return _Val(F.conv2d(_grouped(v, k), weight, bias, mod.stride, mod.padding, mod.dilation, k * mod.groups), True)


def _call_module(mod: nn.Module, name: str, v: _Val, k: int, p: dict[str, torch.Tensor]) -> _Val:
    def param(n: str) -> torch.Tensor | None:
        return p.get(f"{name}.{n}") if getattr(mod, n, None) is not None else None

    if isinstance(mod, nn.Conv2d):
        return _conv(v, k, mod, p[f"{name}.weight"], param("bias"))
    if isinstance(mod, nn.Linear):
        return _linear(v, k, p[f"{name}.weight"], param("bias"))
    if isinstance(mod, nn.ReLU):
        return _Val(F.relu(v.t), v.grouped)
    if isinstance(mod, nn.Flatten):
        return _flatten(v, k, mod.start_dim, mod.end_dim)
    if isinstance(mod, nn.MaxPool2d):
        return _pool(F.max_pool2d, v, k, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode,
                     return_indices=mod.return_indices)
    if isinstance(mod, nn.AvgPool2d):
        return _pool(F.avg_pool2d, v, k, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                     mod.count_include_pad, mod.divisor_override)
    if isinstance(mod, nn.Identity) or (isinstance(mod, nn.modules.dropout._DropoutNd) and mod.p == 0):
        return v
    raise _Unsupported(f"module {type(mod).__name__}")


def _call_function(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], k: int) -> _Val:
    v = args[0]
    if not isinstance(v, _Val):
        raise _Unsupported(f"{fn} on a non-tensor first argument")
    if fn in _RELU:
        return _Val(F.relu(v.t), v.grouped)
    if fn is F.max_pool2d:
        return _pool(F.max_pool2d, v, k, *args[1:], **kwargs)
    if fn is F.avg_pool2d:
        return _pool(F.avg_pool2d, v, k, *args[1:], **kwargs)
    if fn is F.adaptive_avg_pool2d:
        return _pool(F.adaptive_avg_pool2d, v, k, *args[1:], **kwargs)
    if fn is torch.flatten:
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
        return _flatten(v, k, start, end)
    if fn in _ELEMENTWISE_ADD and len(args) == 2 and isinstance(args[1], _Val) and not kwargs:
        if v.grouped and args[1].grouped:
            return _Val(v.t + args[1].t, True)
        return _Val(_stacked(v, k) + _stacked(args[1], k), False)
    raise _Unsupported(f"function {getattr(fn, '__name__', fn)}")


def compile_stacked_forward(model: nn.Module, example: torch.Tensor) -> tuple[StackedForward | None, str | None]:
    """``(forward, None)`` where ``forward(params, x)`` maps stacked parameters (name → (K, ...)) and inputs
    (K, B, ...) to (K, B, C) outputs; ``(None, reason)`` when the model is not fx-traceable, has a node this module
    does not implement, or — checked on ``example`` (a few inputs, (B, ...)) with two copies of ``model``'s
    parameters — does not reproduce ``model(example)``; use ``vmap`` then."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as err:  # any tracing failure means "use vmap"
        return None, f"not traceable by torch.fx ({type(err).__name__})"
    modules = dict(model.named_modules())
    nodes = list(graph.nodes)

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        k = x.shape[0]
        env: dict[fx.Node, Any] = {}

        def arg(a: Any) -> Any:
            return fx.node.map_arg(a, lambda n: env[n])

        for node in nodes:
            if node.op == "placeholder":
                env[node] = _Val(x, False)
            elif node.op == "call_module":
                env[node] = _call_module(modules[node.target], node.target, arg(node.args[0]), k, params)
            elif node.op == "call_function":
                env[node] = _call_function(node.target, arg(node.args), arg(node.kwargs), k)
            elif node.op == "output":
                return _stacked(arg(node.args[0]), k)
            else:
                raise _Unsupported(f"{node.op} node {node.target}")
        raise _Unsupported("graph without output")

    # dry run: unsupported nodes show up now, not in the middle of training, and a module whose forward differs
    # from what its type promises (a subclass) is caught by comparing with the model itself
    with torch.no_grad():
        stacked = {n: torch.stack([t.detach(), t.detach()]) for n, t in model.named_parameters()}
        try:
            out = forward(stacked, torch.stack([example, example]))
        except _Unsupported as err:
            return None, str(err)
        ref = model(example)
    if out.shape != (2, *ref.shape) or not all(torch.allclose(o, ref, atol=1e-5, rtol=1e-4) for o in out):
        return None, "the stacked forward pass does not reproduce the model's (a module with a custom forward?)"
    return forward, None
