"""Build an LLM backend from params: the one place every stage gets its backend from.

A backend is named by a params key (`generate.backend`, `evaluate.judge_backend`):
  openai          any OpenAI-compatible server (llm/openai_backend.py), from `<section>.openai`
  transformers    a local model folder (llm/transformers_backend.py), from `<section>.transformers`
  pkg.module:fn   your own: `fn(*plugin_args)` returns a ChatBackend
A stage can offer more names of its own (generate offers `rules`), as zero-argument builders,
so llm/ never imports the packages that use it.

Example:
  backend = build_backend(params.judge_backend, params, key="evaluate.judge_backend", concurrency=8)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from llm.base import ChatBackend
from llm.openai_backend import OpenAIChat
from llm.params import OpenAIParams, TransformersParams
from llm.transformers_backend import TransformersChat

BUILTIN = ("openai", "transformers")


def backend_from_params(
    params: OpenAIParams | TransformersParams, concurrency: int = 8, device_key: str = "transformers.device"
) -> ChatBackend:
    """The backend a params sub-section describes; `concurrency` sizes an OpenAI client's pool
    (a transformers model batches whatever is queued instead)."""
    if isinstance(params, OpenAIParams):
        return OpenAIChat(params, concurrency=concurrency)
    if isinstance(params, TransformersParams):
        return TransformersChat(params, device_key=device_key)
    raise ValueError(f"an llm backend needs OpenAIParams or TransformersParams, got {params!r}")


def build_backend(
    name: str,
    section: Any,
    *,
    key: str,
    concurrency: int,
    local: Mapping[str, Callable[[], ChatBackend]] | None = None,
    plugin_args: tuple = (),
) -> ChatBackend:
    """The backend `name` (the value of the params key `key`, e.g. "generate.backend"): one of
    the stage's own `local` builders, openai or transformers built from `section.openai` /
    `section.transformers`, or `pkg.module:factory` called with `plugin_args`."""
    local = local or {}
    prefix = key.rpartition(".")[0]
    if name in local:
        return local[name]()
    if name == "openai":
        return backend_from_params(section.openai, concurrency=concurrency)
    if name == "transformers":
        return backend_from_params(section.transformers, device_key=f"{prefix}.transformers.device")
    if ":" in name:
        module, _, factory = name.partition(":")
        return getattr(importlib.import_module(module), factory)(*plugin_args)
    names = ", ".join([*local, *BUILTIN])
    raise ValueError(f"{key}: unknown backend {name!r} ({names} or pkg.module:factory)")
