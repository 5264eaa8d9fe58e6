"""train: the custom GPT on packed contexts, with exact resume and a live monitor.

AdamW (decay/no-decay groups), linear warmup + cosine learning rate, gradient clipping,
gradient accumulation (effective batch = physical batch × accumulation × GPUs), weight
decay `weight_decay` for the first `wd_switch_epochs` epochs then `weight_decay_late`,
bf16 autocast on CUDA and fp32 on the CPU, optional torch.compile. `batch_size: auto` on
CUDA finds the largest physical batch that leaves `vram_headroom_gb` free.

Checkpoints (every `checkpoint_every` steps and at the end) hold model, optimizer, step,
epoch, data position, every RNG state and the metric history, written atomically into a
folder named after the run's parameters, so a kill -9 and a rerun continue with the same
losses, and a run with other params never resumes from a foreign checkpoint.

Multi-GPU: the same script under torchrun (DDP), e.g.
  torchrun --nproc_per_node 2 -m stages.train --params params.yaml ...

Inputs:  data/packed (pack stage), data/tokenizer
Outputs: data/model/model.pt (final weights + config), data/checkpoints/<run>/,
         metrics/train.json, metrics/train_monitor.png, dvclive/ (plots, metrics)

Example:
  python -m stages.train --params params.yaml --packed data/packed --tokenizer data/tokenizer \
      --checkpoints data/checkpoints --out data/model --metrics metrics/train.json \
      --plot metrics/train_monitor.png --live dvclive
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.cli import setup_logging
from common.params import ParamsError, load_section
from dataset.packed_files import DataError
from dataset.tokenizer import TokenizerError
from training.checkpoint import CheckpointError
from training.params import TrainParams
from training.trainer import Trainer

log = logging.getLogger("train")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--packed", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path, required=True, help="root; each run gets its own folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the final model.pt")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plot", type=Path, required=True, help="live monitor PNG")
    parser.add_argument("--live", type=Path, default=Path("dvclive"), help="DVCLive folder")
    parser.add_argument("--resume-from", type=Path, help="a specific checkpoint (default: the run's newest)")
    parser.add_argument("--stop-after", type=int, help="exit after this step (the orchestrator trains in slices)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "train", TrainParams)
        return Trainer(params, args).run()
    except (ParamsError, DataError, TokenizerError, CheckpointError, ValueError, KeyError) as exc:
        log.error("%s", exc.args[0] if isinstance(exc, KeyError) else exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
