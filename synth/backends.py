"""The generate stage's backend: the rules generator, offered to llm.factory beside the LLMs."""

from __future__ import annotations

from llm.base import ChatBackend
from llm.factory import build_backend as build_llm_backend
from synth.generate_params import GenerateParams
from synth.rules_generator import RulesBackend


def build_backend(params: GenerateParams, windows: list[dict]) -> ChatBackend:
    """The backend named by generate.backend; `pkg.module:factory` is called with
    (params, windows) so a user can plug in their own."""
    return build_llm_backend(
        params.backend,
        params,
        key="generate.backend",
        concurrency=params.concurrency,
        local={"rules": lambda: RulesBackend(windows, seed=params.seed)},
        plugin_args=(params, windows),
    )
