"""Talk to a trained model in the terminal: answers stream as they are generated.

Inputs: --model, the train stage's data/model/model.pt (default), a training checkpoint
step-*.pt, or an exported folder (config.json + model.safetensors + tokenizer/); --tokenizer,
data/tokenizer by default, or the exported folder's own tokenizer/ when --model is one.
Outputs: the conversation on stdout (logs go to stderr).

The conversation is kept across turns and rendered as ChatML each turn (dataset/chatml.py,
model/inference.py). When it no longer fits the model's context with room for an answer,
the oldest user/assistant turns are dropped. Commands: /reset forgets the conversation,
/quit, Ctrl-D or Ctrl-C at the prompt exit; Ctrl-C during an answer cuts it short.
`--prompt "..."` answers one question, prints the answer and exits (for scripts and tests).
Sampling defaults to temperature 0.7 and top-p 0.9; `--temperature 0` is greedy.

Example:
  python -m tools.chat --model data/model/model.pt --tokenizer data/tokenizer
  python -m tools.chat --prompt "Who commanded the 6th Army at Stalingrad?" --temperature 0
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TextIO

import torch

from common.cli import setup_logging
from dataset.tokenizer import MODEL_FILE, Tokenizer, TokenizerError
from model.gpt import GPT
from model.inference import ModelLoadError, chat_prompt, load_model, stream_answer

log = logging.getLogger("chat")

DEFAULT_MODEL = Path("data/model/model.pt")
DEFAULT_TOKENIZER = Path("data/tokenizer")
EXPORT_TOKENIZER = "tokenizer"  # an exported model folder keeps its tokenizer in this subfolder
COMMANDS = "/reset forgets the conversation, /quit (or Ctrl-D) exits"


def fit_history(messages: list[dict], prompt_length: Callable[[list[dict]], int], limit: int) -> list[dict]:
    """The newest part of `messages` (user/assistant pairs, then the new user turn) whose prompt
    takes at most `limit` tokens: the oldest pairs are dropped first. The new user turn is always
    kept, even when it alone is too long; the caller checks that case."""
    start = 0
    while start + 1 < len(messages) and prompt_length(messages[start:]) > limit:
        start += 2  # a user turn and the assistant's answer to it
    return messages[start:]


def answer_room(context_length: int, max_new_tokens: int) -> int:
    """Tokens kept free for the answer: max_new_tokens, but at most half the context, so a
    large --max-new-tokens does not push the whole history out (generation then stops at the
    context's end instead)."""
    return min(max_new_tokens, context_length // 2)


def stream_to(out: TextIO, pieces: Generator[str, None, bool]) -> tuple[str, bool]:
    """Write `pieces` to `out` as they come; (the whole text, whether it ended with <|im_end|>)."""
    text: list[str] = []
    while True:
        try:
            piece = next(pieces)
        except StopIteration as stop:
            return "".join(text), bool(stop.value)
        out.write(piece)
        out.flush()
        text.append(piece)


class Chat:
    """A conversation with one model: history, context fitting and streamed replies."""

    def __init__(self, model: GPT, tokenizer: Tokenizer, sampling: dict, out: TextIO) -> None:
        self.model, self.tokenizer, self.sampling, self.out = model, tokenizer, sampling, out
        self.history: list[dict] = []
        self.limit = model.config.context_length - answer_room(model.config.context_length, sampling["max_new_tokens"])

    def reply(self, question: str) -> bool:
        """Answer `question` after the history, streaming to `out`; False if it did not fit."""
        messages = fit_history(
            [*self.history, {"role": "user", "content": question}],
            lambda m: len(chat_prompt(self.tokenizer, m)),
            self.limit,
        )
        if len(chat_prompt(self.tokenizer, messages)) > self.limit:
            log.error("message too long: the prompt would leave no room for an answer in %d tokens", self.limit)
            return False
        if len(messages) <= len(self.history):
            log.info("dropped=%d oldest turns to fit the context", len(self.history) + 1 - len(messages))
        text, stopped = stream_to(self.out, stream_answer(self.model, self.tokenizer, messages, **self.sampling))
        self.out.write("\n")
        if not stopped:
            log.warning("answer cut short: no <|im_end|> within max_new_tokens or the context")
        self.history = [*messages, {"role": "assistant", "content": text}]
        return True

    def loop(self, read: Callable[[str], str] = input) -> int:
        """Read questions until /quit or end of input."""
        self.out.write(f"ww2lm chat: {COMMANDS}\n")
        while True:
            try:
                line = read("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                self.out.write("\n")
                return 0
            if line in ("/quit", "/exit"):
                return 0
            if line == "/reset":
                self.history = []
                self.out.write("(conversation reset)\n")
                continue
            if not line:
                continue
            if line.startswith("/"):
                self.out.write(f"unknown command {line.split()[0]}: {COMMANDS}\n")
                continue
            self.out.write("model> ")
            try:
                self.reply(line)
            except KeyboardInterrupt:  # cut this answer short, keep the conversation before it
                self.out.write(" [interrupted]\n")


def resolve_tokenizer(model: Path, tokenizer: Path | None) -> Path:
    """--tokenizer if given, else an exported model folder's own tokenizer/, else data/tokenizer."""
    if tokenizer is not None:
        return tokenizer
    if model.is_dir() and (model / EXPORT_TOKENIZER / MODEL_FILE).is_file():
        return model / EXPORT_TOKENIZER
    return DEFAULT_TOKENIZER


def load_chat_model(model_path: Path, tokenizer: Path | None, device: str) -> tuple[GPT, Tokenizer]:
    """The model and the tokenizer it was trained with (`resolve_tokenizer`); ModelLoadError or
    TokenizerError naming the file when one is missing or they do not match."""
    tokenizer_path = resolve_tokenizer(model_path, tokenizer)
    model, config = load_model(model_path, device=torch.device(device))
    tokenizer = Tokenizer.load(tokenizer_path)
    if tokenizer.vocab_size != config.vocab_size:
        raise ModelLoadError(
            f"{tokenizer_path} has {tokenizer.vocab_size} tokens but {model_path} was trained on {config.vocab_size}"
        )
    return model, tokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model.pt, step-*.pt or an exported folder")
    parser.add_argument("--tokenizer", type=Path, default=None, help=f"tokenizer folder (default {DEFAULT_TOKENIZER})")
    parser.add_argument("--prompt", default=None, help="answer this one question and exit")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0 = all)")
    parser.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (1 = off)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (default: a fresh one per answer)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args(argv)
    if args.max_new_tokens < 1 or args.temperature < 0 or args.top_k < 0 or not 0 < args.top_p <= 1:
        parser.error("need --max-new-tokens >= 1, --temperature >= 0, --top-k >= 0 and 0 < --top-p <= 1")
    setup_logging(logging.WARNING if args.prompt is not None else logging.INFO)

    try:
        model, tokenizer = load_chat_model(args.model, args.tokenizer, args.device)
    except (ModelLoadError, TokenizerError) as exc:
        log.error("%s", exc)
        return 2
    log.info("model=%s params=%d context=%d tokenizer=%s", args.model, model.num_params(),
             model.config.context_length, tokenizer.source)  # fmt: skip
    sampling = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "seed": args.seed,
    }
    chat = Chat(model, tokenizer, sampling, sys.stdout)
    if args.prompt is not None:
        return 0 if chat.reply(args.prompt) else 1
    return chat.loop()


if __name__ == "__main__":
    sys.exit(main())
