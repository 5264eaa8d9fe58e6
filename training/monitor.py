"""The live training monitor: one PNG, refreshed while training, that says what run it is.

Panels: train/validation/recall loss, learning rate, gradient norm, weight decay, and
judge pass rate when the orchestrator has validated checkpoints. No timing figure: the PNG
is tracked in git and must come out the same on a rerun (tokens/s is in the log). The title carries the
variant and key params, so a PNG found later still tells which of 25 variants it shows.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen: render to files only
import matplotlib.pyplot as plt  # noqa: E402

from common.files import atomic_write  # noqa: E402

PANELS = (
    ("loss", "loss", "train"),
    ("lr", "learning rate", "train"),
    ("grad_norm", "grad norm (before clipping)", "train"),
    ("weight_decay", "weight decay", "train"),
    ("pass_rate", "judge pass rate", "judge"),
)


def render_monitor(history: dict, title: str, path: Path) -> None:
    """Draw `history` ({"train": [...], "val": [...], "judge": [...]}, each a list of dicts
    with a "step") into `path`, atomically (a viewer never sees half a PNG)."""
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax in axes.flat[len(PANELS) :]:
        ax.set_axis_off()
    for ax, (key, label, series) in zip(axes.flat, PANELS, strict=False):  # 6 axes, 5 panels
        rows = [r for r in history.get(series, []) if key in r]
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=series, linewidth=1)
        if key == "loss":
            for name, curve in (
                ("val_loss", "validation (unseen articles)"),
                ("recall_loss", "recall (held-out questions)"),
            ):
                val = [r for r in history.get("val", []) if name in r]
                ax.plot([r["step"] for r in val], [r[name] for r in val], "o-", label=curve, markersize=3)
            ax.legend()
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if not rows and key != "loss":
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=80)
    plt.close(fig)
