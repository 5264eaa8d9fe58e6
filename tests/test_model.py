"""The GPT: shapes, init, learning, and the packing invariants of README.md, "Training"."""

from __future__ import annotations

import math

import pytest
import torch

from model.config import GPTConfig
from model.gpt import GPT, masked_cross_entropy, set_weight_decay
from model.packing import pack_rows

CONFIG = GPTConfig(vocab_size=512, context_length=128, n_layer=2, n_head=4, n_embd=64)
RECORD_LENGTHS = [[37, 5, 60], [1, 17, 90]]  # two rows; each row's tail becomes a padding record


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_model(config: GPTConfig = CONFIG, backend: str = "auto", seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(config, attention_backend=backend).eval()


def packed_batch(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    rows = [
        [(torch.randint(0, CONFIG.vocab_size, (n,), generator=gen).tolist(), [1] * n) for n in row]
        for row in RECORD_LENGTHS
    ]
    return rows, pack_rows(rows, CONFIG.context_length)


def test_shapes_with_and_without_targets():
    model = make_model()
    idx = torch.randint(0, CONFIG.vocab_size, (3, 20))
    logits, loss = model(idx)
    assert logits.shape == (3, 20, CONFIG.vocab_size) and loss is None
    logits, loss = model(idx, targets=idx)
    assert logits.shape == (3, 20, CONFIG.vocab_size) and loss.shape == ()


def test_too_long_a_row_is_refused():
    with pytest.raises(ValueError, match="context_length=128"):
        make_model()(torch.zeros(1, 129, dtype=torch.long))


def test_loss_at_init_is_about_ln_vocab():
    config = GPTConfig(vocab_size=2000, context_length=64, n_layer=2, n_head=4, n_embd=64)
    idx = torch.randint(0, config.vocab_size, (4, 64), generator=torch.Generator().manual_seed(0))
    _, loss = make_model(config)(idx, targets=torch.roll(idx, -1, 1))
    assert abs(loss.item() - math.log(config.vocab_size)) < 0.1


def test_init_scales_residual_projections():
    config = GPTConfig(vocab_size=64, context_length=8, n_layer=8, n_head=4, n_embd=256)
    model = make_model(config)
    block = model.transformer.h[0]
    assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert block.mlp.c_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr()  # untied


def test_overfits_one_batch():
    model = make_model().train()
    _, batch = packed_batch()
    optimizer = model.configure_optimizer(weight_decay=0.0, lr=3e-3)
    losses = []
    for _ in range(60):
        _, loss = model(**batch.as_kwargs())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]


@pytest.mark.parametrize("backend", ["records", "dense"])
def test_packed_logits_equal_each_record_alone(backend):
    model = make_model(backend=backend)
    rows, batch = packed_batch()
    with torch.no_grad():
        packed, _ = model(batch.idx, positions=batch.positions, cu_seqlens=batch.cu_seqlens)
        for r, row in enumerate(rows):
            start = 0
            for ids, _ in row:
                alone, _ = model(torch.tensor([ids]))  # (1, l, V): positions 0..l-1, one record
                assert (packed[r, start : start + len(ids)] - alone[0]).abs().max() <= 1e-5
                start += len(ids)


def test_positions_alone_imply_the_records():
    model = make_model()
    _, batch = packed_batch()
    with torch.no_grad():
        both, _ = model(batch.idx, positions=batch.positions, cu_seqlens=batch.cu_seqlens)
        from_positions, _ = model(batch.idx, positions=batch.positions)
        from_cu_seqlens, _ = model(batch.idx, cu_seqlens=batch.cu_seqlens)
    assert torch.equal(both, from_positions) and torch.equal(both, from_cu_seqlens)


@pytest.mark.parametrize("backend", ["records", "dense"])
def test_a_records_loss_has_zero_gradient_wrt_other_records(backend):
    model = make_model(backend=backend)
    _, batch = packed_batch()
    captured = []

    def keep_embeddings(module, inputs, output):
        output.retain_grad()  # the token embeddings: each token's own leaf of the graph
        captured.append(output)

    model.transformer.wte.register_forward_hook(keep_embeddings)
    # the loss of record B alone: row 0's second record (tokens 37..41)
    start, end = RECORD_LENGTHS[0][0], sum(RECORD_LENGTHS[0][:2])
    only_b = torch.zeros_like(batch.loss_mask)
    only_b[0, start:end] = batch.loss_mask[0, start:end]
    _, loss = model(**{**batch.as_kwargs(), "loss_mask": only_b})
    loss.backward()
    grad = captured[0].grad  # (B, T, C)
    outside = torch.ones(grad.shape[:2], dtype=torch.bool)
    outside[0, start:end] = False
    assert torch.equal(grad[outside], torch.zeros_like(grad[outside]))  # exactly zero, not just small
    assert grad[0, start:end].abs().sum() > 0


def test_masked_loss_is_the_mean_over_masked_in_targets():
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 0]], dtype=torch.bool)
    per_token = torch.nn.functional.cross_entropy(logits.view(-1, 7), targets.view(-1), reduction="none")
    expected = per_token[mask.view(-1)].mean()
    assert masked_cross_entropy(logits, targets, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    nothing = masked_cross_entropy(logits, targets, torch.zeros_like(mask))
    assert nothing.item() == 0.0


def test_optimizer_groups_and_weight_decay_switch():
    model = make_model()
    optimizer = model.configure_optimizer(weight_decay=0.1, lr=1e-3, betas=(0.9, 0.95))
    decay, no_decay = optimizer.param_groups
    assert (decay["name"], decay["weight_decay"], no_decay["weight_decay"]) == ("decay", 0.1, 0.0)
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    set_weight_decay(optimizer, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    resumed = make_model().configure_optimizer(weight_decay=0.1, lr=1e-3)
    resumed.load_state_dict(optimizer.state_dict())  # a checkpoint carries the switched value
    assert resumed.param_groups[0]["weight_decay"] == 0.05
    with pytest.raises(ValueError, match="'decay'"):
        set_weight_decay(torch.optim.AdamW(model.parameters()), 0.05)


def test_num_params_matches_the_config_formula():
    for config in (CONFIG, GPTConfig(vocab_size=300, context_length=16, n_layer=3, n_head=2, n_embd=32, bias=False)):
        assert make_model(config).num_params() == config.num_params()
    model = make_model()
    assert model.num_params(exclude_embeddings=True) == CONFIG.num_params() - (512 + 128) * 64


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="not divisible"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ValueError, match="vocab_size"):
        GPTConfig(vocab_size=0)


def test_the_head_on_counted_positions_only_gives_the_same_loss_and_gradients():
    """return_logits=False (what training uses) skips the head where no target counts."""
    _, batch = packed_batch()
    kwargs = {k: v for k, v in batch.as_kwargs().items() if k != "idx"}
    kwargs["targets"] = kwargs["targets"].clone()
    kwargs["targets"][0, :3] = -100  # ignored targets as well as masked-out ones
    losses, grads = [], []
    for return_logits in (True, False):
        model = make_model()
        logits, loss = model(batch.idx, **kwargs, return_logits=return_logits)
        assert (logits is None) != return_logits
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    assert torch.allclose(grads[1], grads[0], atol=1e-6)
    with pytest.raises(ValueError, match="needs targets"):
        make_model()(batch.idx, return_logits=False)
