"""Tokens/s through the OpenAI-compatible server (1 and 8 concurrent clients) against in-process generation.

One random GPT (default 4 layers, 256 wide, 4 heads, 1024 context; weights as bench/decode.py
draws them), a tokenizer trained on three sample articles (vocabulary 800), greedy decoding,
--requests chat requests each asking for up to --max-tokens tokens (the same distinct
questions in every run, so every run generates the very same tokens). Three runs of them:

  in_process  serving.engine.ChatEngine.pieces called in a loop: model/inference.py's
              generation plus prompt building and text decoding, no HTTP
  clients=1   one openai client sending the requests one after another to tools/serve's app
  clients=8   eight clients at once; the server queues them and answers one at a time

The server (serving/background.py) runs in its own process, so the clients' HTTP and JSON work
does not share its GIL. tokens/s = completion tokens (the server's usage, or the tokens the
in-process loop generated; equal by construction, checked) / wall time; ratio = served over
in-process (goal: close to 1, i.e. the HTTP layer and the queue cost little; 8 clients can
only queue, since one sequence decodes at a time). The load average is printed with the result
because busy cores slow every number. One torch thread per process by default: on a shared
2-core machine two threads wait on each other at every small op and the numbers become noise.

Example:
  python -m bench.serve_throughput
Output:
  layers=4 width=256 ... requests=16 max_tokens=128 loadavg_1m=0.52
  tokens_per_s: in_process=... clients_1=... clients_8=...
  ratio: clients_1/in_process=... clients_8/in_process=...
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import openai
import torch

from bench._servers import serve_until_told, server_process
from bench.decode import random_gpt
from dataset.tokenizer import Tokenizer
from model.config import GPTConfig
from serving.api import create_app
from serving.background import BackgroundServer
from serving.engine import ChatEngine, Reply, Sampling
from tests.inference_helpers import build_tokenizer

NAME = "bench"
TOPICS = ("Stalingrad", "Kursk", "Midway", "El Alamein", "Normandy", "Leyte Gulf", "Anzio", "Arnhem")


def make_engine(tokenizer_folder: Path, args: argparse.Namespace) -> ChatEngine:
    tokenizer = Tokenizer.load(tokenizer_folder)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, context_length=args.context, n_layer=args.layers,
                       n_head=args.heads, n_embd=args.width)  # fmt: skip
    return ChatEngine(random_gpt(config, seed=0), tokenizer, NAME, max_queue=64)


def questions(count: int) -> list[list[dict]]:
    return [
        [{"role": "user", "content": f"What happened at {TOPICS[i % len(TOPICS)]} (question {i})?"}]
        for i in range(count)
    ]


def _serve(tokenizer_folder: Path, args: argparse.Namespace, conn: Connection) -> None:
    torch.set_num_threads(args.threads)
    serve_until_told(BackgroundServer(create_app(make_engine(tokenizer_folder, args))), conn)


def in_process(engine: ChatEngine, requests: list[list[dict]], max_tokens: int) -> tuple[float, int]:
    """(seconds, completion tokens) of answering `requests` one by one in this process."""
    tokens = 0
    start = time.perf_counter()
    for messages in requests:
        prompt = engine.prompt_ids(messages)
        reply = Reply(prompt_tokens=len(prompt))
        for _ in engine.pieces(prompt, Sampling(max_tokens=max_tokens, temperature=0.0), reply):
            pass
        tokens += reply.completion_tokens
    return time.perf_counter() - start, tokens


def served(base_url: str, requests: list[list[dict]], max_tokens: int, clients: int) -> tuple[float, int]:
    """(seconds, completion tokens) of `clients` openai clients sending `requests` at once."""
    pool_clients = [
        openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=600) for _ in range(clients)
    ]

    def ask(index: int) -> int:
        client = pool_clients[index % clients]
        reply = client.chat.completions.create(
            model=NAME, messages=requests[index], max_tokens=max_tokens, temperature=0
        )
        return reply.usage.completion_tokens

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(ask, range(clients)))  # untimed: connections and threads start once
        start = time.perf_counter()
        tokens = sum(pool.map(ask, range(len(requests))))
    return time.perf_counter() - start, tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, in both processes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer(Path(tmp))
        logging.disable(logging.INFO)  # the tokenizer stage switched INFO logging on; one line per request is noise
        engine = make_engine(Path(tmp) / "tok", args)
        requests = questions(args.requests)
        in_process(engine, requests[:1], args.max_tokens)  # warm-up: first-call allocations
        with server_process(_serve, (Path(tmp) / "tok", args), timeout=120) as base_url:
            base_seconds, base_tokens = in_process(engine, requests, args.max_tokens)
            runs = {clients: served(base_url, requests, args.max_tokens, clients) for clients in (1, 8)}
    print(
        f"layers={args.layers} width={args.width} heads={args.heads} context={args.context} "
        f"threads={torch.get_num_threads()} requests={args.requests} max_tokens={args.max_tokens} "
        f"loadavg_1m={os.getloadavg()[0]:.2f}"
    )
    if any(tokens != base_tokens for _, tokens in runs.values()):
        print(f"token counts differ: in_process={base_tokens} served={[t for _, t in runs.values()]}")
        return 1
    base_rate = base_tokens / base_seconds
    rates = {clients: tokens / seconds for clients, (seconds, tokens) in runs.items()}
    print(f"tokens_per_s: in_process={base_rate:.0f} " + " ".join(f"clients_{c}={r:.0f}" for c, r in rates.items()))
    print("ratio: " + " ".join(f"clients_{c}/in_process={r / base_rate:.2f}" for c, r in rates.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
