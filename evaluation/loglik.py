"""Log-likelihood scoring of fixed answers, lm-evaluation-harness style.

For a prompt and candidate replies, each candidate's score is the summed log-probability of its
tokens as the assistant reply to the ChatML-rendered prompt (dataset/chatml.py, encoded the way
training encoded it). As in lm-evaluation-harness's `multiple_choice` output type
(docs/task_guide.md; lm_eval/api/metrics.py), `acc` is right when the argmax of the summed
log-prob is the correct option and `acc_norm` when the argmax of log-prob divided by the
option's length in characters is. Only the option's content tokens are scored, not the
<|im_end|> after them, which is lm-eval's definition (the continuation alone).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dataset.chatml import ChatEncoder


@torch.inference_mode()
def continuation_logprob(model: nn.Module, context: Sequence[int], continuation: Sequence[int]) -> float:
    """Sum of log p(continuation[i] | context, continuation[:i]). A sequence longer than the
    model's context keeps its last tokens (lm-eval truncates on the left too)."""
    if not continuation:
        raise ValueError("an empty continuation has no log-likelihood")
    sequence = [*context, *continuation][-(model.config.context_length + 1) :]
    device = next(model.parameters()).device
    ids = torch.tensor([sequence[:-1]], dtype=torch.long, device=device)  # (1, T)
    targets = torch.tensor(sequence[1:], dtype=torch.long, device=device)  # (T,)
    logits = model(ids)[0][0].float()  # (T, vocab)
    logprobs = logits.log_softmax(-1).gather(1, targets[:, None])[:, 0]  # (T,)
    return float(logprobs[-len(continuation) :].sum())


def option_logprobs(
    model: nn.Module, encoder: ChatEncoder, messages: Sequence[dict], options: Sequence[str]
) -> list[float]:
    """Each option's summed log-prob as the assistant's reply to `messages`."""
    context = encoder.encode_prompt(messages)
    return [continuation_logprob(model, context, encoder.tokenizer.encode(option)) for option in options]


def argmax(values: Sequence[float]) -> int:
    """The first index of the largest value (ties go to the earlier option, as numpy's argmax)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def ll_choice(logprobs: Sequence[float], options: Sequence[str]) -> dict:
    """The option picked by acc (summed log-prob) and by acc_norm (log-prob per character)."""
    norm = [lp / max(len(o), 1) for lp, o in zip(logprobs, options, strict=True)]
    return {"pick": argmax(logprobs), "pick_norm": argmax(norm), "logprobs": [round(lp, 4) for lp in logprobs]}
