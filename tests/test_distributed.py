"""The GPU and multi-process paths of training, on the CPU: CUDA, NCCL and DDP are replaced
by recording stand-ins (no GPU on these machines); the rank agreement runs on real gloo."""

import pytest
import torch
import torch.multiprocessing as mp

from model import attention, gpt
from model.attention import attend, plan_records
from model.config import GPTConfig
from model.gpt import GPT
from training import checkpoint
from training.distributed import (
    agree_batch_size,
    auto_batch_upper,
    choose_auto_batch,
    probe_batch_size,
    setup_distributed,
    shutdown_distributed,
    usable_bytes,
    wrap_model,
)

GB = 2**30


class Recorder:
    """Stands in for torch.cuda / torch.distributed: records every call in order."""

    def __init__(self, initialized=False):
        self.calls, self.initialized = [], initialized

    def set_device(self, index):
        self.calls.append(("set_device", index))

    def init_process_group(self, backend):
        self.calls.append(("init_process_group", backend))
        self.initialized = True

    def get_rank(self):
        return 1

    def is_available(self):
        return True

    def is_initialized(self):
        return self.initialized

    def destroy_process_group(self):
        self.calls.append(("destroy_process_group",))
        self.initialized = False


def test_the_rank_gpu_is_made_current_before_nccl_starts(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    calls = Recorder()
    dist = setup_distributed("cuda", cuda=calls, dist=calls)
    assert calls.calls == [("set_device", 1), ("init_process_group", "nccl")]
    assert (dist.world, dist.rank, dist.local_rank) == (2, 1, 1)
    calls = Recorder()
    setup_distributed("cpu", cuda=calls, dist=calls)
    assert calls.calls == [("init_process_group", "gloo")]  # no GPU is touched on the CPU


def test_the_process_group_is_destroyed_at_the_end_and_only_if_joined():
    joined, alone = Recorder(initialized=True), Recorder()
    shutdown_distributed(joined)
    shutdown_distributed(alone)
    assert joined.calls == [("destroy_process_group",)] and alone.calls == []


def test_ddp_wraps_the_model_before_it_is_compiled():
    order = []

    def ddp(model, device_ids):
        order.append(("ddp", device_ids))
        return ("ddp", model)

    def compile_fn(model):
        order.append(("compile",))
        return ("compiled", model)

    wrapped = wrap_model("m", 2, torch.device("cuda", 1), True, ddp=ddp, compile_fn=compile_fn)
    assert order == [("ddp", [1]), ("compile",)] and wrapped == ("compiled", ("ddp", "m"))
    order.clear()
    assert wrap_model("m", 1, torch.device("cpu"), False, ddp=ddp, compile_fn=compile_fn) == "m" and order == []


def test_the_auto_batch_is_capped_at_each_rank_share_of_the_effective_batch():
    assert auto_batch_upper(16, 1, 256) == 16  # before: up to 256 contexts per step against 16 asked
    assert auto_batch_upper(120, 4, 256) == 30
    assert auto_batch_upper(120, 1, 64) == 64
    assert auto_batch_upper(2, 4, 256) == 1


def test_every_rank_takes_the_smallest_probe_and_a_stored_batch_is_never_reprobed():
    probed = []

    def probe(upper):
        probed.append(upper)
        return 12

    other_rank = 9  # this rank's all-reduce partner found less room

    def agree(local):
        return min(local, other_rank)

    assert choose_auto_batch(probe, agree, 16) == 9 and probed == [16]
    assert choose_auto_batch(probe, agree, 16, stored=6) == 6 and probed == [16]  # a resume keeps it

    def out_of_memory(upper):
        raise MemoryError("even a batch of 1 does not fit")

    with pytest.raises(MemoryError, match="batch_size auto"):
        choose_auto_batch(out_of_memory, agree, 16)  # joins the agreement with 0 first
    other_rank = 0
    with pytest.raises(MemoryError, match="batch_size auto"):
        choose_auto_batch(probe, agree, 16)  # the healthy rank stops too instead of hanging


def _agree_on_two_ranks(rank, folder, batches):
    torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/init", world_size=2, rank=rank)
    try:
        agreed = agree_batch_size(batches[rank], 2, torch.device("cpu"))
        (folder / f"rank{rank}").write_text(str(agreed))
    finally:
        torch.distributed.destroy_process_group()


def test_two_real_ranks_agree_on_the_smaller_batch(tmp_path):
    # fork, not spawn: the children need not import torch again (seconds each on 2 cores)
    mp.start_processes(_agree_on_two_ranks, args=(tmp_path, [24, 17]), nprocs=2, start_method="fork")
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == ["17", "17"]


class FakeCuda:
    """A GPU of `total` bytes with `free` left, where a batch of b reserves b GB at its peak
    but allocates only 0.6 b GB of it (the caching allocator's blocks)."""

    def __init__(self, total, free, model):
        self.total, self.free, self.model = total, free, model

    def empty_cache(self):
        pass

    def mem_get_info(self, device):
        return self.free, self.total

    def memory_reserved(self, device):
        return 0

    def reset_peak_memory_stats(self, device):
        self.model.last_batch = 0

    def max_memory_reserved(self, device):
        return self.model.last_batch * GB

    def max_memory_allocated(self, device):
        return int(0.6 * self.model.last_batch * GB)


class ProbedModel(torch.nn.Module):
    """Records the batch of each probing forward."""

    def __init__(self):
        super().__init__()
        self.config = GPTConfig(vocab_size=10, context_length=4, n_layer=1, n_head=1, n_embd=2)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.last_batch = 0

    def num_params(self):
        return 0

    def forward(self, idx, targets):
        self.last_batch = idx.shape[0]
        return None, (self.weight * idx.float()).sum()


def test_the_probe_counts_reserved_memory_and_leaves_a_margin():
    model = ProbedModel()
    cuda = FakeCuda(total=40 * GB, free=30 * GB, model=model)
    # usable: 30 GB free - 1 GB headroom - 5% of 40 GB = 27 GB; a batch of b reserves b GB
    assert usable_bytes(30 * GB, 0, 40 * GB, 1.0) == 27 * GB
    assert probe_batch_size(model, torch.device("cpu"), 4, 1.0, 256, cuda=cuda) == 27
    # before: allocated memory against total - headroom took 39 / 0.6 = 65 contexts, an OOM later


def test_rng_capture_touches_only_this_rank_gpu(monkeypatch):
    seen = []
    monkeypatch.setattr(checkpoint.torch.cuda, "get_rng_state", lambda device: seen.append(device) or torch.zeros(8))
    monkeypatch.setattr(checkpoint.torch.cuda, "get_rng_state_all", lambda: pytest.fail("touched every GPU"))
    state = checkpoint.capture_rng(torch.device("cuda", 3))
    assert seen == [torch.device("cuda", 3)] and state["cuda"].shape == (8,)
    restored = []
    monkeypatch.setattr(checkpoint.torch.cuda, "set_rng_state", lambda s, device: restored.append(device))
    monkeypatch.setattr(checkpoint.torch.cuda, "set_rng_state_all", lambda s: pytest.fail("touched every GPU"))
    checkpoint.restore_rng(state, torch.device("cuda", 3))
    assert restored == [torch.device("cuda", 3)]


def test_flash_deterministic_reaches_flash_attn(monkeypatch):
    calls = []

    def fake_flash(q, k, v, cu_q, cu_k, max_q, max_k, causal, deterministic):
        calls.append(deterministic)
        return q

    monkeypatch.setattr(attention, "flash_attn_varlen_func", fake_flash)
    q = torch.randn(6, 2, 4)
    cu = torch.tensor([0, 2, 6])
    for deterministic in (False, True):
        attend(q, q, q, plan_records(cu, 6, "flash", deterministic=deterministic))
    assert calls == [False, True]

    planned = []
    real_plan = gpt.plan_records
    monkeypatch.setattr(
        gpt, "plan_records", lambda *a, **k: planned.append(k.get("deterministic")) or real_plan(*a, **k)
    )
    model = GPT(GPTConfig(vocab_size=16, context_length=8, n_layer=1, n_head=2, n_embd=8), "records", True)
    model(torch.zeros(1, 8, dtype=torch.long))
    assert planned == [True]  # the model hands its deterministic_attention to every plan
