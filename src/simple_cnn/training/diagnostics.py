"""Finding where numbers go bad: the NaN trap's layer search and per-layer activation statistics."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

from simple_cnn.errors import NonFiniteLossError  # noqa: F401 - raised by the loop, re-exported


def non_finite_message(loss: float, epoch: int, step: int, steps_per_epoch: int, global_step: int,
                       lr: float, where: str, checkpoint_path: object, last_epoch: int) -> str:
    """What the NaN trap tells the user: when, at what LR, where, and what is kept."""
    last_good = ("none (this run keeps no checkpoint)" if checkpoint_path is None else
                 f"{checkpoint_path} (epoch {last_epoch})" if last_epoch
                 else "none yet (the failure came in the first epoch)")
    return (f"Loss became {loss} at epoch {epoch}, step {step}/{steps_per_epoch} (global step "
            f"{global_step}) with lr {lr:.4g}. First non-finite: {where}. Training stopped; the "
            f"last good checkpoint is {last_good}. Try a lower cnn.training.lr, a longer warmup, "
            "a normalisation layer (cnn.model.norm), or amp: off.")


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if name and not list(m.children())]


def first_non_finite_layer(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    autocast: Callable[[], AbstractContextManager],
) -> str:
    """Re-run one batch with hooks armed and name the first place that is not finite.

    Checked in order: parameters, forward activations (in execution order), then gradients
    flowing back (nearest the loss first). The hooks exist only during this call.
    """
    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            return f"parameters of {name.rsplit('.', 1)[0]} ({name}) are already non-finite"
    found: list[str] = []
    handles = []

    def forward_hook(name):
        def hook(module, inputs, output):
            if not found and torch.is_tensor(output) and not torch.isfinite(output).all():
                found.append(f"activations of {name} ({type(module).__name__})")
        return hook

    def backward_hook(name):
        def hook(module, grad_input, grad_output):
            grads = [g for g in (*grad_output, *grad_input) if g is not None]
            if not found and any(not torch.isfinite(g).all() for g in grads):
                found.append(f"gradients of {name} ({type(module).__name__})")
        return hook

    was_training = model.training
    try:
        for name, module in leaf_modules(model):
            handles.append(module.register_forward_hook(forward_hook(name)))
            handles.append(module.register_full_backward_hook(backward_hook(name)))
        model.zero_grad(set_to_none=True)
        with autocast():
            logits = model(images)
            loss = loss_fn(logits, targets)
        if not found and not torch.isfinite(logits).all():
            found.append("the logits")
        if not found:
            loss.backward()
        if not found and not torch.isfinite(loss):
            found.append("the loss function only (all activations finite)")
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return found[0] if found else "no layer on a re-run of the batch (the failure did not repeat)"


@torch.no_grad()
def activation_stats(model: nn.Module, images: torch.Tensor) -> dict[str, dict[str, float]]:
    """Mean/std/min/max of each layer's output for one batch, and the fraction of exact zeros
    (dead or inactive units after a ReLU)."""
    stats: dict[str, dict[str, float]] = {}
    handles = []

    def hook(name):
        def record(module, inputs, output):
            out = output.detach().float()
            stats[name] = {
                "type": type(module).__name__,
                "mean": out.mean().item(),
                "std": out.std().item(),
                "min": out.min().item(),
                "max": out.max().item(),
                "fraction_zero": (out == 0).float().mean().item(),
            }
        return record

    was_training = model.training
    model.eval()
    try:
        for name, module in leaf_modules(model):
            handles.append(module.register_forward_hook(hook(name)))
        model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return stats


def dead_units(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> dict[str, float] | None:
    """Per ReLU/LeakyReLU layer, the fraction of channels that never fire (output > 0 nowhere, on
    no image of ``images``): units a too-high LR or a bad start has killed. ``None`` when the
    model has no ReLU-family activation (GELU is never exactly off)."""
    counts = dead_unit_counts(model, images, batch_size)
    return None if counts is None else {name: dead / units for name, (dead, units) in counts.items()}


def dead_fraction_of_all_units(counts: dict[str, tuple[int, int]] | None) -> float | None:
    """Dead units over all units of every layer (a layer of 128 channels weighs 8x one of 16)."""
    if not counts:
        return None
    return sum(dead for dead, _ in counts.values()) / sum(units for _, units in counts.values())


@torch.no_grad()
def dead_unit_counts(model: nn.Module, images: torch.Tensor,
                     batch_size: int = 512) -> dict[str, tuple[int, int]] | None:
    """Per ReLU/LeakyReLU layer, (units that never fire on ``images``, units): a unit is a
    channel of a convolutional layer or a hidden unit of a linear one. ``None`` without such
    a layer."""
    layers = [(name, m) for name, m in leaf_modules(model) if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    if not layers:
        return None
    fired: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, inputs, output):
            peak = output.detach().float().amax(dim=(0, 2, 3)) if output.ndim == 4 else output.detach().float().amax(0)
            fired[name] = peak if name not in fired else torch.maximum(fired[name], peak)
        return record

    was_training = model.training
    model.eval()
    handles = [module.register_forward_hook(hook(name)) for name, module in layers]
    try:
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: (int((peak <= 0).sum().item()), peak.numel()) for name, peak in fired.items()}
