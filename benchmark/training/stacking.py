"""Stacking ``K`` models of one architecture into one network that runs them all at once.

The stacked network is batch-first: its input is ``[B, K, *input_shape]``, row ``[:, k]`` being
model ``k``'s own mini-batch, and its output ``[B, K, num_classes]``. Each layer is replaced by a
layer that applies the ``K`` models' copies of it in one call:

* ``nn.Linear`` becomes :class:`StackedLinear`, a batched matrix product (``torch.bmm``) with
  weights ``[K, out, in]``;
* convolutional layers run in the *folded* layout ``[B, K*C, H, W]``, where model ``k`` owns the
  channels ``k*C .. (k+1)*C - 1``: a convolution with ``groups=K`` is ``K`` independent
  convolutions (:class:`StackedConv2d`), a GroupNorm with ``K*G`` groups is ``K`` independent
  GroupNorms with ``G`` groups (:class:`StackedGroupNorm`), and pooling acts per channel anyway;
* element-wise layers (ReLU, dropout) need no change.

Every stacked parameter is model-major: its first dimension indexes the models (``K`` rows, or
``K`` contiguous blocks of rows). :mod:`benchmark.training.stacked_samplers` relies on this to
compute the per-sample gradient norm of each model separately, for DP-SGD.

We stack layers by hand rather than with ``torch.func.vmap`` over ``functional_call``. Both
run the same batched kernels and trained equally fast on the default MLP (``benchmark.bench.speed``
prints the comparison; on the CNN the stacked layers were somewhat faster), but stacked layers
are ordinary modules, to which Opacus attaches per-layer grad and norm samplers for DP-SGD, and
they need no functional rewrite of the training loop.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

#: Activation layouts: ``models`` is ``[B, K, ...]``; ``folded`` is ``[B, K*C, H, W]``.
MODELS, FOLDED = "models", "folded"


class NotStackable(ValueError):
    """The models cannot be stacked (an unknown layer type, or different architectures)."""


#: Whether stacked linear layers compute their weight gradients (see without_weight_gradients).
_weight_gradients = True


@contextlib.contextmanager
def without_weight_gradients() -> Iterator[None]:
    """Within this block, stacked linear layers back-propagate to their inputs only.

    For a backward pass run only for the hooks it fires (the norm pass of Opacus's ghost
    clipping), whose weight gradients would be computed and thrown away.
    """
    global _weight_gradients
    _weight_gradients = False
    try:
        yield
    finally:
        _weight_gradients = True


class StackedAffine(torch.autograd.Function):
    """``[B, K, in] -> [B, K, out]``: ``x[:, k] @ weight[k].T + bias[k]`` for every model ``k``.

    The backward pass computes each gradient in the layout it is stored in. Autograd's generic
    backward of the same batched product returns the weight gradient transposed and copies it into
    place, which cost a fifth of a training step on the default MLP.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        by_model = x.transpose(0, 1)  # [K, B, in], a view: bmm reads the strides as they are
        ctx.save_for_backward(by_model, weight)
        if bias is None:
            out = torch.bmm(by_model, weight.transpose(1, 2))
        else:
            out = torch.baddbmm(bias.unsqueeze(1), by_model, weight.transpose(1, 2))
        return out.transpose(0, 1)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        by_model, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        need_x, need_weight, need_bias = ctx.needs_input_grad  # type: ignore[attr-defined]
        need_weight, need_bias = need_weight and _weight_gradients, need_bias and _weight_gradients
        g = grad.transpose(0, 1)  # [K, B, out]
        dx = torch.bmm(g, weight).transpose(0, 1) if need_x else None
        dweight = torch.bmm(g.transpose(1, 2), by_model) if need_weight else None
        dbias = g.sum(dim=1) if need_bias else None
        return dx, dweight, dbias


class StackedLinear(nn.Module):
    """``K`` independent ``nn.Linear`` layers: ``[B, K, in] -> [B, K, out]``."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.n_models = len(layers)
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        has_bias = layers[0].bias is not None
        self.bias = (
            nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))
            if has_bias
            else None
        )
        #: The norm pass's input and back-propagated gradient, for DP-SGD's book-keeping
        #: (:func:`benchmark.training.stacked_samplers.clipped_linear_gradients`).
        self.bookkeeping: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise NotStackable(f"StackedLinear expects [B, K, features], got {tuple(x.shape)}")
        return StackedAffine.apply(x, self.weight, self.bias)

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        state = {"weight": self.weight[k]}
        if self.bias is not None:
            state["bias"] = self.bias[k]
        return state


def _blocks(parameter: torch.Tensor | None, k: int, n_models: int) -> torch.Tensor | None:
    """Model ``k``'s block of a model-major parameter (``K`` contiguous blocks of rows)."""
    if parameter is None:
        return None
    size = parameter.shape[0] // n_models
    return parameter[k * size : (k + 1) * size]


class StackedConv2d(nn.Conv2d):
    """``K`` independent ``nn.Conv2d`` layers as one grouped convolution (folded layout)."""

    def __init__(self, layers: Sequence[nn.Conv2d]) -> None:
        first = layers[0]
        if first.padding_mode != "zeros":
            raise NotStackable(f"padding_mode={first.padding_mode} is not stackable")
        k = len(layers)
        super().__init__(
            k * first.in_channels,
            k * first.out_channels,
            first.kernel_size,
            stride=first.stride,
            padding=first.padding,
            dilation=first.dilation,
            groups=k * first.groups,
            bias=first.bias is not None,
        )
        self.n_models = k
        with torch.no_grad():
            self.weight.copy_(torch.cat([layer.weight for layer in layers]))
            if self.bias is not None:
                self.bias.copy_(torch.cat([layer.bias for layer in layers]))

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        state = {"weight": _blocks(self.weight, k, self.n_models)}
        if self.bias is not None:
            state["bias"] = _blocks(self.bias, k, self.n_models)
        return state


class StackedGroupNorm(nn.GroupNorm):
    """``K`` independent ``nn.GroupNorm`` layers as one GroupNorm over ``K*G`` groups."""

    def __init__(self, layers: Sequence[nn.GroupNorm]) -> None:
        first = layers[0]
        k = len(layers)
        super().__init__(k * first.num_groups, k * first.num_channels, first.eps, first.affine)
        self.n_models = k
        if self.affine:
            with torch.no_grad():
                self.weight.copy_(torch.cat([layer.weight for layer in layers]))
                self.bias.copy_(torch.cat([layer.bias for layer in layers]))

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        if not self.affine:
            return {}
        return {
            "weight": _blocks(self.weight, k, self.n_models),
            "bias": _blocks(self.bias, k, self.n_models),
        }


class FoldModels(nn.Module):
    """``[B, K, C, H, W] -> [B, K*C, H, W]`` (a view)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1, 2)


class StackedFlatten(nn.Module):
    """``nn.Flatten`` per model: ``[B, K, ...]`` or folded ``[B, K*C, ...]`` to ``[B, K, F]``."""

    def __init__(self, n_models: int, folded: bool) -> None:
        super().__init__()
        self.n_models, self.folded = n_models, folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Folded channels are model-major, so model k's (c, h, w) values are contiguous.
        return x.reshape(x.shape[0], self.n_models, -1) if self.folded else x.flatten(2)


@dataclass(frozen=True)
class Stacker:
    """How one layer type is stacked: the layout it needs (None: any) and the builder."""

    needs: str | None
    build: Callable[[list[nn.Module], str], tuple[nn.Module, str]]


#: Layer type -> how to stack it. Extend with :func:`register_stacker` for a new layer.
STACKERS: dict[type[nn.Module], Stacker] = {}


def register_stacker(
    *types: type[nn.Module], needs: str | None
) -> Callable[[Callable[[list[nn.Module], str], tuple[nn.Module, str]]], Callable]:
    def decorate(build: Callable[[list[nn.Module], str], tuple[nn.Module, str]]) -> Callable:
        for layer_type in types:
            STACKERS[layer_type] = Stacker(needs, build)
        return build

    return decorate


@register_stacker(nn.Linear, needs=MODELS)
def _linear(layers: list[nn.Module], layout: str) -> tuple[nn.Module, str]:
    return StackedLinear(layers), MODELS  # type: ignore[arg-type]


@register_stacker(nn.Conv2d, needs=FOLDED)
def _conv(layers: list[nn.Module], layout: str) -> tuple[nn.Module, str]:
    return StackedConv2d(layers), FOLDED  # type: ignore[arg-type]


@register_stacker(nn.GroupNorm, needs=FOLDED)
def _group_norm(layers: list[nn.Module], layout: str) -> tuple[nn.Module, str]:
    return StackedGroupNorm(layers), FOLDED  # type: ignore[arg-type]


@register_stacker(
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, needs=FOLDED
)
def _per_channel(layers: list[nn.Module], layout: str) -> tuple[nn.Module, str]:
    return copy.deepcopy(layers[0]), FOLDED


@register_stacker(
    nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity, needs=None
)
def _elementwise(layers: list[nn.Module], layout: str) -> tuple[nn.Module, str]:
    # Dropout draws an independent mask per element, so per model as well.
    return copy.deepcopy(layers[0]), layout


@register_stacker(nn.Flatten, needs=None)
def _flatten(layers: list[nn.Module], layout: str) -> tuple[nn.Module, str]:
    first = layers[0]
    if (first.start_dim, first.end_dim) != (1, -1):  # type: ignore[union-attr]
        raise NotStackable("only nn.Flatten() with the default dimensions is stackable")
    return StackedFlatten(len(layers), folded=layout == FOLDED), MODELS


class Ensemble(nn.Module):
    """``K`` models of one architecture, stacked: ``[B, K, *input] -> [B, K, num_classes]``."""

    def __init__(self, layers: list[nn.Module], sources: list[int | None], n_models: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        #: For each stacked layer, the index of the original layer it replaces (None: inserted).
        self.sources = sources
        self.n_models = n_models

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    @torch.no_grad()
    def unstack_into(self, modules: Sequence[nn.Module]) -> None:
        """Copy each model's parameters back into its own module (same architecture)."""
        for layer, source in zip(self.layers, self.sources, strict=True):
            if source is None or not hasattr(layer, "member_state"):
                continue
            for k, module in enumerate(modules):
                for name, value in layer.member_state(k).items():
                    getattr(module[source], name).copy_(value)


def stack(modules: Sequence[nn.Module]) -> Ensemble:
    """Stack ``K`` ``nn.Sequential`` models of one architecture; raise NotStackable if not."""
    if not modules or not all(isinstance(m, nn.Sequential) for m in modules):
        raise NotStackable("only nn.Sequential models are stackable")
    if len({len(m) for m in modules}) != 1:
        raise NotStackable("the models do not share one architecture")
    layers: list[nn.Module] = []
    sources: list[int | None] = []
    layout = MODELS
    for index, group in enumerate(zip(*modules, strict=True)):
        kind = type(group[0])
        if any(type(layer) is not kind or repr(layer) != repr(group[0]) for layer in group):
            raise NotStackable(f"layer {index} differs between the models")
        if kind not in STACKERS:
            raise NotStackable(f"no stacked version of {kind.__name__} (see STACKERS)")
        stacker = STACKERS[kind]
        if stacker.needs == FOLDED and layout == MODELS:
            layers.append(FoldModels())
            sources.append(None)
        elif stacker.needs == MODELS and layout == FOLDED:
            raise NotStackable(f"{kind.__name__} after a convolution needs an nn.Flatten first")
        layer, layout = stacker.build(list(group), layout)
        layers.append(layer)
        sources.append(index)
    if layout != MODELS:
        raise NotStackable("the models must end with a per-model output (e.g. nn.Linear)")
    return Ensemble(layers, sources, len(modules))


@torch.no_grad()
def check_stacked(ensemble: Ensemble, modules: Sequence[nn.Module], probe: torch.Tensor) -> None:
    """Raise NotStackable unless ``ensemble`` computes what each module computes on ``probe``.

    A cheap guard (one small forward pass, in eval mode) that catches a layer whose stacked
    version is wrong for an architecture it was not written for.
    """
    was_training = ensemble.training
    ensemble.eval()
    try:
        stacked = ensemble(probe.unsqueeze(1).expand(-1, len(modules), *probe.shape[1:]))
    except (RuntimeError, NotStackable) as exc:
        raise NotStackable(f"the stacked models do not run: {exc}") from None
    finally:
        ensemble.train(was_training)
    for k, module in enumerate(modules):
        expected = module.eval()(probe)
        if stacked.shape[2:] != expected.shape[1:] or not torch.allclose(
            stacked[:, k], expected, rtol=1e-4, atol=1e-5
        ):
            raise NotStackable(f"stacked model {k} does not compute what model {k} computes")
