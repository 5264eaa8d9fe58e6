"""The best checkpoint on the recall metric: which step, its loss, its weights, and patience.

DESIGN.md: the shipped model is the best checkpoint on the recall metric, not the last step.
At every evaluation the recall loss (the loss on the held-out recall answers) is compared with
the best so far; a new best keeps a CPU copy of the weights. The tracker's state goes into
every checkpoint (the weights only when the best step is not the checkpoint's own step, whose
model already is them), so a killed and resumed run still knows its best, atomically with the
rest of the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in state_dict.items()}


@dataclass
class BestTracker:
    step: int | None = None  # step of the lowest recall loss so far
    loss: float | None = None
    evals_since: int = 0  # evaluations since that step
    weights: dict[str, torch.Tensor] | None = None  # its weights (CPU); None off the main rank

    def update(self, step: int, loss: float, model: torch.nn.Module, keep_weights: bool = True) -> bool:
        """Record one evaluation; True when it is a new best (strictly lower)."""
        if self.loss is not None and loss >= self.loss:
            self.evals_since += 1
            return False
        self.step, self.loss, self.evals_since = step, loss, 0
        self.weights = cpu_copy(model.state_dict()) if keep_weights else None
        return True

    def should_stop(self, patience: int) -> bool:
        return patience > 0 and self.step is not None and self.evals_since >= patience

    def state(self, checkpoint_step: int) -> dict:
        """For a checkpoint written at `checkpoint_step`."""
        own = self.step == checkpoint_step
        return {
            "step": self.step,
            "recall_loss": self.loss,
            "evals_since": self.evals_since,
            "model": None if own else self.weights,
        }

    @classmethod
    def from_state(cls, state: dict | None, checkpoint_step: int, checkpoint_model: dict) -> BestTracker:
        if not state or state.get("step") is None:
            return cls()
        weights = state["model"] if state["step"] != checkpoint_step else cpu_copy(checkpoint_model)
        return cls(state["step"], state["recall_loss"], state["evals_since"], weights)
