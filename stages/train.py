"""train: the custom GPT on packed contexts, with exact resume and a live monitor.

AdamW (decay/no-decay groups), linear warmup + cosine learning rate, gradient clipping,
gradient accumulation (effective batch = physical batch × accumulation × GPUs), weight
decay `weight_decay` for the first `wd_switch_epochs` epochs then `weight_decay_late`,
bf16 autocast on CUDA and fp32 on the CPU, optional torch.compile. `batch_size: auto` on
CUDA finds the largest physical batch that leaves `vram_headroom_gb` free.

Every `eval_every` steps and at the end: validation loss (held-out articles) and recall loss
(held-out questions of trained articles); data/model/model.pt holds the weights of the step
with the lowest recall loss (`select_best`; false: the last step) and records that step;
`early_stop_patience` evaluations without a new best stop the run (0: off).

Checkpoints (every `checkpoint_every` steps and at the end) hold model, optimizer, step,
epoch, data position, every RNG state, the metric history and the best step with its weights,
written atomically into a folder named after the run identity (training/identity.py: packed
data and tokenizer content, model config, train params), so a kill -9 and a rerun continue
with the same losses, and changing pack.seed, the tokenizer or the params starts a new run.
--resume-from refuses another run's checkpoint, naming what differs, exit 2, unless
--allow-foreign-resume is given.

Multi-GPU: the same script under torchrun (DDP), e.g.
  torchrun --nproc_per_node 2 -m stages.train --params params.yaml ...

Inputs:  data/packed (pack stage), data/tokenizer
Outputs: data/model/model.pt (best or last weights + config + step), data/checkpoints/<run>/,
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
from common.stores import StoreBusyError, shared_path
from dataset.packed_files import DataError
from dataset.tokenizer import TokenizerError
from training.checkpoint import CheckpointError
from training.distributed import shutdown_distributed
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
    parser.add_argument(
        "--allow-foreign-resume",
        action="store_true",
        help="resume --resume-from even when it is another run's checkpoint (logs what differs)",
    )
    parser.add_argument("--stop-after", type=int, help="exit after this step (the orchestrator trains in slices)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "train", TrainParams)
        args.checkpoints = shared_path(args.checkpoints)  # shared by every experiment copy
        return Trainer(params, args).run()
    except (
        ParamsError,
        DataError,
        TokenizerError,
        CheckpointError,
        StoreBusyError,
        ValueError,
        KeyError,
        MemoryError,
    ) as exc:
        log.error("%s", exc.args[0] if isinstance(exc, KeyError) else exc)
        return 2
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
