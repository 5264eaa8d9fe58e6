"""The params of the LLM backends: one frozen dataclass per backend, a sub-section of the
stage that uses it (`generate.openai`, `evaluate.transformers`, ...).

Kept apart from the backends and free of torch and httpx, so a Dask worker that unpickles a
stage's params never imports a model library, and a params check costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.params import refuse_invalid

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class OpenAIParams:
    base_url: str  # server root up to /v1, e.g. "http://127.0.0.1:8000/v1"
    model: str  # the served model name, e.g. "Qwen/Qwen3-4B" (vLLM --served-model-name)
    api_key_env: str  # name of the env var holding the key; "" or an unset var: no Authorization header
    temperature: float  # sampling temperature
    top_p: float  # nucleus sampling mass
    max_tokens: int  # reply budget; a reply cut off at it fails as "truncated"
    timeout_seconds: float  # limit on a whole request, connect to last byte: cover a full generation
    max_retries: int  # retries after the first attempt, on 429/5xx/timeouts/dropped connections/bad replies
    backoff_seconds: float  # first retry wait, doubled each attempt (Retry-After wins)
    max_backoff_seconds: float  # cap on any single wait, Retry-After included
    enable_thinking: bool  # False: ask Qwen3-style templates not to think (chat_template_kwargs)


@dataclass(frozen=True)
class TransformersParams:
    model_path: str  # a local model directory (config.json, weights, tokenizer with a chat template)
    batch_size: int  # max prompts per generate call
    batch_wait_ms: float  # how long the batcher waits to fill a batch after the first request
    max_new_tokens: int  # a reply that needs more is an LLMError("truncated")
    temperature: float  # 0 = greedy
    top_p: float  # nucleus sampling mass; only used when temperature > 0
    device: str  # auto | cpu | cuda (auto = cuda when available)
    dtype: str  # auto | float32 | bfloat16 (auto = bf16 on CUDA, fp32 on CPU)
    enable_thinking: bool  # passed to the chat template (Qwen3 reasoning); stripped from replies anyway
    seed: int  # seeds sampling, so a rerun with the same request order repeats itself

    def __post_init__(self) -> None:
        # Fail at params load, before minutes of weight loading, with the key's name.
        checks = [
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("batch_wait_ms", self.batch_wait_ms >= 0, "must be >= 0"),
            ("max_new_tokens", self.max_new_tokens >= 1, "must be >= 1"),
            ("temperature", self.temperature >= 0, "must be >= 0 (0 = greedy)"),
            ("top_p", 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("device", self.device in DEVICES, f"must be one of {', '.join(DEVICES)}"),
            ("dtype", self.dtype == "auto" or self.dtype in DTYPES, f"must be auto or one of {', '.join(DTYPES)}"),
        ]
        refuse_invalid(self, checks)
