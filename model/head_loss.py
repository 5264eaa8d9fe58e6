"""The output head and its cross entropy in chunks of positions, never all logits at once.

For M counted positions the head's logits are (M, vocab) fp32: at ww2-33m with a 32,000
vocabulary and one 4096-token context that is ~0.5 GB, and autograd keeps them plus their
softmax for the backward. Here the head runs on `chunk` positions at a time and each chunk's
gradients (with respect to the hidden states and the head weight) are computed in the same
pass, while its logits are at hand, as Liger-Kernel's fused linear cross entropy does
(Hsu et al. 2024, arXiv:2410.10989); the backward then only scales them. Peak memory is one
chunk's logits, and nothing is computed twice.

Example:
    loss = head_cross_entropy(hidden, model.lm_head.weight, targets)  # hidden (M, C), targets (M,)
"""

from __future__ import annotations

import torch
from torch import Tensor

CHUNK_LOGITS = 2**23  # logits per chunk (32 MB of fp32): 262 positions at a 32,000 vocabulary


def head_cross_entropy(hidden: Tensor, weight: Tensor, targets: Tensor, chunk_logits: int = CHUNK_LOGITS) -> Tensor:
    """Mean cross entropy of logits = hidden @ weight.T against targets: hidden (M, C), weight
    (V, C), targets (M,) ids -> a scalar; 0 (not NaN) when M is 0. The same value and gradients
    as F.cross_entropy(hidden @ weight.T, targets) to float rounding."""
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"hidden must be (M, C) and targets (M,), got {tuple(hidden.shape)} and {tuple(targets.shape)}"
        )
    if chunk_logits < 1:
        raise ValueError(f"chunk_logits must be at least 1, got {chunk_logits}")
    rows = max(1, chunk_logits // weight.size(0))
    return _ChunkedHeadLoss.apply(hidden, weight, targets.long(), rows)


class _ChunkedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, targets: Tensor, rows: int) -> Tensor:
        count = max(1, hidden.size(0))
        want_grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total = hidden.new_zeros((), dtype=torch.float32)
        grad_hidden = torch.empty_like(hidden) if want_grads else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if want_grads else None
        for start in range(0, hidden.size(0), rows):
            h = hidden[start : start + rows]  # (m, C)
            t = targets[start : start + rows]  # (m,)
            logits = (h @ weight.T).float()  # (m, V)
            lse = logits.logsumexp(-1)  # (m,)
            total += (lse - logits.gather(1, t[:, None])[:, 0]).sum()
            if want_grads:  # d(sum of losses)/dlogits = softmax - one_hot, formed in place
                probs = logits.sub_(lse[:, None]).exp_()
                probs[torch.arange(len(t), device=t.device), t] -= 1
                grad_hidden[start : start + rows] = (probs.to(weight.dtype) @ weight).to(hidden.dtype)
                grad_weight.addmm_(probs.T, h.float())
        if want_grads:
            ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.count, ctx.weight_dtype = count, weight.dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_loss: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_loss / ctx.count
        grad_h = grad_hidden * scale.to(grad_hidden.dtype) if ctx.needs_input_grad[0] else None
        grad_w = (grad_weight * scale).to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None
        return grad_h, grad_w, None, None
