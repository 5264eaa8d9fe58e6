"""The chunked head loss: the same loss and gradients as full logits + cross entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)

from model.head_loss import head_cross_entropy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def leaves(m=37, c=16, v=50, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(m, c, generator=gen, requires_grad=True)
    weight = (0.3 * torch.randn(v, c, generator=gen)).requires_grad_()
    return hidden, weight, torch.randint(0, v, (m,), generator=gen)


@pytest.mark.parametrize("chunk_logits", [1, 50 * 5, 50 * 36, 2**23])  # 1 row, 5 rows (ragged end), 36, all
def test_same_loss_and_gradients_as_full_logits(chunk_logits):
    hidden, weight, targets = leaves()
    reference = F.cross_entropy(hidden @ weight.T, targets)
    reference.backward()
    expected = [hidden.grad.clone(), weight.grad.clone()]
    hidden.grad = weight.grad = None
    loss = head_cross_entropy(hidden, weight, targets, chunk_logits)
    (3.0 * loss).backward()  # an upstream factor reaches both gradients
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert torch.allclose(hidden.grad, 3.0 * expected[0], atol=1e-6)
    assert torch.allclose(weight.grad, 3.0 * expected[1], atol=1e-6)


def test_no_grad_and_no_positions():
    hidden, weight, targets = leaves()
    with torch.no_grad():
        value = head_cross_entropy(hidden, weight, targets, 100)
    assert value.item() == pytest.approx(F.cross_entropy(hidden @ weight.T, targets).item(), rel=1e-6)
    empty = head_cross_entropy(hidden[:0], weight, targets[:0])
    empty.backward()
    assert empty.item() == 0.0 and weight.grad.abs().sum() == 0


def test_bad_shapes_are_refused():
    hidden, weight, targets = leaves()
    with pytest.raises(ValueError, match=r"targets \(M,\)"):
        head_cross_entropy(hidden, weight, targets[:-1])
    with pytest.raises(ValueError, match="chunk_logits"):
        head_cross_entropy(hidden, weight, targets, 0)
