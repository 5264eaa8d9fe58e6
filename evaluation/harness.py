"""An lm-evaluation-harness model adapter, registered as `ww2lm`, and the exam as an lm-eval task.

    python -m tools.harness --model ww2lm \
        --model_args model=data/model/model.pt,tokenizer=data/tokenizer --tasks ww2lm_exam

Our models are chat models: a request's context is the user's turn and the continuation the
assistant's reply, rendered in ChatML and encoded the way training encoded them
(dataset/chatml.py). So `loglikelihood` gives, for a multiple-choice task whose text is the
question and whose choices are the options, exactly what evaluation/loglik.py gives the
evaluate stage (the test checks both agree, question by question). `loglikelihood_rolling`
scores plain text (perplexity tasks) in windows of the model's context; `generate_until`
answers the context as a user turn and cuts the reply at the first `until` string.

The exam task (evaluation/lm_eval_tasks/ww2lm_exam.yaml) reads data/exams/sample.jsonl;
another quiz in the same format is one `dataset_kwargs.data_files` away.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from common.devices import pick_device
from dataset.chatml import ChatEncoder
from dataset.tokenizer import Tokenizer
from model.inference import answer, load_model

TASKS_DIR = Path(__file__).resolve().parent / "lm_eval_tasks"


def _device(requested: str | None) -> torch.device:
    """lm-eval passes its default "cuda:0" with or without a GPU: a CUDA request without CUDA is auto."""
    if requested and requested.startswith("cuda:") and torch.cuda.is_available():
        return torch.device(requested)
    return pick_device("auto" if not requested or requested.startswith("cuda") else requested, "--device")


@register_model("ww2lm")
class Ww2lmLM(LM):
    def __init__(self, model: str, tokenizer: str, device: str | None = None, max_gen_toks: int = 256, **_):
        """`model`: model.pt, a checkpoint or an exported folder; `tokenizer`: its tokenizer folder.
        Other lm-eval options (batch_size, ...) are accepted and unused: requests run one by one."""
        super().__init__()
        self._device = _device(device)
        self.model, self.config = load_model(model, self._device)
        self.tokenizer = Tokenizer.load(Path(tokenizer))
        self.encoder = ChatEncoder(self.tokenizer)
        self.max_gen_toks = int(max_gen_toks)

    @torch.inference_mode()
    def _score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """Summed log-prob of `continuation` after `context`, and whether greedy decoding gives it."""
        if not continuation:
            raise ValueError("lm-eval sent an empty continuation: nothing to score")
        sequence = [*context, *continuation][-(self.config.context_length + 1) :]
        ids = torch.tensor([sequence[:-1]], dtype=torch.long, device=self._device)
        targets = torch.tensor(sequence[1:], dtype=torch.long, device=self._device)
        logprobs = self.model(ids)[0][0].float().log_softmax(-1)[-len(continuation) :]
        wanted = targets[-len(continuation) :]
        picked = logprobs.gather(1, wanted[:, None])[:, 0]
        return float(picked.sum()), bool((logprobs.argmax(-1) == wanted).all())

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        out = []
        for request in requests:
            context, continuation = request.args
            prompt = self.encoder.encode_prompt([{"role": "user", "content": context}])
            out.append(self._score(prompt, self.tokenizer.encode(continuation)))
        return out

    def loglikelihood_rolling(self, requests) -> list[float]:
        width = self.config.context_length
        out = []
        for request in requests:
            (text,) = request.args
            ids = [self.tokenizer.im_end_id, *self.tokenizer.encode(text)]  # <|im_end|> stands in for BOS
            total, start = 0.0, 1
            while start < len(ids):  # each token predicted once, with as much context as fits
                end = min(start + width, len(ids))
                context_start = max(0, end - width - 1)
                total += self._score(ids[context_start:start], ids[start:end])[0]
                start = end
            out.append(total)
        return out

    def generate_until(self, requests) -> list[str]:
        out = []
        for request in requests:
            context, kwargs = request.args
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            reply, _ = answer(
                self.model,
                self.tokenizer,
                [{"role": "user", "content": context}],
                max_new_tokens=int(kwargs.get("max_gen_toks", self.max_gen_toks)),
                temperature=float(kwargs.get("temperature", 0.0)),
            )
            cut = min([reply.find(stop) for stop in until if stop and stop in reply], default=len(reply))
            out.append(reply[:cut])
        return out
