"""The `generate` params section. Imports neither torch nor the stage's CLI: a Dask worker
unpickles GenerateParams with every task, and must not pay for either."""

from __future__ import annotations

from dataclasses import dataclass

from common.params import ParamsError
from llm.params import OpenAIParams, TransformersParams


@dataclass(frozen=True)
class GenerateParams:
    backend: str  # rules | openai | transformers | package.module:factory
    mode: str  # single (one call returns question and answer) | chain (question, then answer)
    types: tuple[str, ...]  # prompt types to run; empty = every type in the registry
    weights: dict  # per-type priority overrides, e.g. {contrast_person: 3.0}
    seed: int  # window order per type and the rules backend's choices
    samples_per_type: int  # draws per (window, type): more questions about the same facts, in other words
    type_samples: dict  # per-type samples_per_type, e.g. {fill_blank: 9}; unnamed types take samples_per_type
    executor: str  # local | dask
    concurrency: int  # requests in flight (local) / tasks in flight (dask)
    scheduler_address: str  # dask: tcp://host:8786 of a running scheduler
    task_retries: int  # dask: reruns of a task that raised (worker deaths are retried anyway)
    store_url: str  # "" = the --store folder; or an fsspec URL (s3://bucket/ww2lm/generate)
    retry_failed: bool  # rerun items whose reply was unusable last time
    priorities: str  # "" = none; a probe's priorities file (python -m tools.probe): weak windows/types first
    openai: OpenAIParams
    transformers: TransformersParams


def check_params(params: GenerateParams, where: str) -> None:
    """Values the dataclass types cannot check; `where` is e.g. "params.yaml:generate"."""
    if params.samples_per_type < 1:
        raise ParamsError(f"{where}.samples_per_type: must be >= 1, got {params.samples_per_type}")
    for name, count in params.type_samples.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ParamsError(f"{where}.type_samples.{name}: expected a whole number >= 1, got {count!r}")
    if params.mode not in ("single", "chain"):
        raise ParamsError(f"{where}.mode: {params.mode!r} is not single or chain")
    if params.executor not in ("local", "dask"):
        raise ParamsError(f"{where}.executor: {params.executor!r} is not local or dask")
    for name, weight in params.weights.items():
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            raise ParamsError(f"{where}.weights.{name}: expected a number >= 0 (0 pauses the type), got {weight!r}")
    if params.executor == "dask" and not params.scheduler_address:
        raise ParamsError(f"{where}.scheduler_address: executor dask needs tcp://host:port")
