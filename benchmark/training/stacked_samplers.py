"""Opacus grad and norm samplers for the stacked layers of :mod:`benchmark.training.stacking`.

With these registered, Opacus trains a whole stacked ensemble with DP-SGD: its hooks compute the
per-sample gradient norms and its optimizer adds the noise. The only difference from one model is
the privacy unit: a stacked batch row ``b`` holds one example *of each model*, and each model must
clip its own examples. So every norm sampler here returns norms of shape ``[B, K]`` (one per
example and model) instead of ``[B]``; Opacus's
:class:`~opacus.grad_sample.GradSampleModuleFastGradientClipping` combines them over parameters
with ``torch.stack(...).norm(dim=0)``, which keeps that shape, and the clipping coefficients it
derives are ``[B, K]`` as well.

Linear layers use ghost clipping (Li et al. 2022, "Large Language Models Can Be Strong
Differentially Private Learners", section 4): for one example, the gradient of ``W`` is the outer
product ``g a^T`` of the back-propagated gradient ``g`` and the input ``a``, whose Frobenius norm
is ``||g|| ||a||``, so no per-sample gradient is ever materialised. Convolutions and GroupNorm
materialise per-sample gradients (they are small) and take norms per model. The convolution's
grad sampler is written per group, because Opacus's computes every pair of groups and keeps the
diagonal, which is ``K`` times the work and memory for ``K`` stacked models. Every parameter is
model-major (see :mod:`benchmark.training.stacking`), which is what makes the reshape to
``[B, K, -1]`` pick out each model's block.

Importing this module registers the samplers.
"""

from __future__ import annotations

import torch
from opacus.grad_sample import register_grad_sampler, register_norm_sampler
from opacus.grad_sample.group_norm import compute_group_norm_grad_sample
from opacus.utils.tensor_utils import unfold2d
from torch import nn

from benchmark.training.stacking import StackedConv2d, StackedGroupNorm, StackedLinear

Samples = dict[nn.Parameter, torch.Tensor]


@register_grad_sampler(StackedLinear)
def stacked_linear_grad_sample(
    layer: StackedLinear, activations: list[torch.Tensor], backprops: torch.Tensor
) -> Samples:
    """Per-sample gradients ``[B, K, out, in]`` and ``[B, K, out]`` (materialised)."""
    a = activations[0].to(backprops.dtype)  # [B, K, in]
    samples = {layer.weight: torch.einsum("bko,bki->bkoi", backprops, a)}
    if layer.bias is not None:
        samples[layer.bias] = backprops
    return samples


@register_norm_sampler(StackedLinear)
def stacked_linear_norm_sample(
    layer: StackedLinear, activations: list[torch.Tensor], backprops: torch.Tensor
) -> Samples:
    """Per-sample, per-model gradient norms ``[B, K]`` by ghost clipping: ``||g|| ||a||``.

    Keeps ``a`` and ``g`` on the layer (``layer.bookkeeping``) for :func:`clipped_linear_gradients`.
    """
    a = activations[0].to(backprops.dtype)
    layer.bookkeeping = (a, backprops)
    g_norm = backprops.norm(dim=-1)
    norms = {layer.weight: g_norm * a.norm(dim=-1)}
    if layer.bias is not None:
        norms[layer.bias] = g_norm
    return norms


def clipped_linear_gradients(layers: list[StackedLinear], coefficients: torch.Tensor) -> None:
    """Set each layer's ``.grad`` to the sum of its clipped per-example gradients.

    Book-keeping (Bu et al. 2023, "Differentially Private Optimization on Large Model at Small
    Cost", section 3): example ``b``'s gradient of ``W`` is ``g_b a_b^T``, so the clipped sum
    ``sum_b c_b g_b a_b^T`` is one matrix product of the norm pass's ``c * g`` and ``a`` per model,
    and the second backward pass of ghost clipping is not needed. Exact when every trainable
    layer is a stacked linear layer (each example's ``g`` and ``a`` depend on that example alone).
    """
    scale = coefficients.unsqueeze(-1)  # [B, K, 1]
    for layer in layers:
        assert layer.bookkeeping is not None, "the norm pass did not reach this layer"
        a, g = layer.bookkeeping
        layer.bookkeeping = None
        clipped = g * scale.to(g.dtype)  # [B, K, out]
        layer.weight.grad = torch.bmm(clipped.permute(1, 2, 0), a.transpose(0, 1))
        if layer.bias is not None:
            layer.bias.grad = clipped.sum(dim=0)


def _per_model_norms(samples: Samples, n_models: int) -> Samples:
    """``[B, K*c, ...]`` model-major per-sample gradients -> ``[B, K]`` norms."""
    return {
        param: grad.reshape(grad.shape[0], n_models, -1).norm(dim=-1)
        for param, grad in samples.items()
    }


@register_grad_sampler(StackedConv2d)
def stacked_conv_grad_sample(
    layer: StackedConv2d, activations: list[torch.Tensor], backprops: torch.Tensor
) -> Samples:
    """Per-sample gradients of a grouped convolution, group by group (im2col and a product)."""
    a = activations[0].to(backprops.dtype)
    n, groups = a.shape[0], layer.groups
    columns = unfold2d(
        a,
        kernel_size=layer.kernel_size,
        padding=layer.padding,
        stride=layer.stride,
        dilation=layer.dilation,
    )  # [B, in_channels * kh * kw, L], group-major
    columns = columns.view(n, groups, -1, columns.shape[-1])
    g = backprops.reshape(n, groups, layer.out_channels // groups, -1)
    samples = {
        layer.weight: torch.einsum("bgol,bgpl->bgop", g, columns).reshape(n, *layer.weight.shape)
    }
    if layer.bias is not None:
        samples[layer.bias] = backprops.reshape(n, layer.out_channels, -1).sum(dim=2)
    return samples


# Opacus looks samplers up by exact type, so the subclass needs its own registration.
register_grad_sampler(StackedGroupNorm)(compute_group_norm_grad_sample)


@register_norm_sampler(StackedConv2d)
def stacked_conv_norm_sample(
    layer: StackedConv2d, activations: list[torch.Tensor], backprops: torch.Tensor
) -> Samples:
    return _per_model_norms(stacked_conv_grad_sample(layer, activations, backprops), layer.n_models)


@register_norm_sampler(StackedGroupNorm)
def stacked_group_norm_norm_sample(
    layer: StackedGroupNorm, activations: list[torch.Tensor], backprops: torch.Tensor
) -> Samples:
    samples = compute_group_norm_grad_sample(layer, activations, backprops)
    return _per_model_norms(samples, layer.n_models)


def per_model_norm_samplers() -> set[type[nn.Module]]:
    """The layer types whose norm sampler returns per-model norms ``[B, K]``."""
    return {StackedLinear, StackedConv2d, StackedGroupNorm}
