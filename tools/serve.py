"""Serve a trained model over an OpenAI-compatible HTTP API, with a chat page at /.

Any OpenAI client (the `openai` package, Open WebUI, curl) talks to it: base URL
http://127.0.0.1:8000/v1, model name `--name` (default ww2lm). Routes and errors are described in
serving/api.py; requests are queued and answered one at a time (serving/engine.py).

Inputs: --model, data/model/model.pt (default), a training checkpoint step-*.pt, or an exported
folder (its own tokenizer/ is used); --tokenizer, data/tokenizer by default.
Binds 127.0.0.1 unless --host says otherwise; --api-key (or the WW2LM_API_KEY environment
variable) makes every /v1 route want `Authorization: Bearer <key>`. Serving on another
address without a key is refused unless --insecure says so.

Example:
  python -m tools.serve --model data/model/model.pt --tokenizer data/tokenizer --port 8000
  curl -s http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{"model": "ww2lm", "messages": [{"role": "user", "content": "Who led the 6th Army?"}]}'
  open http://127.0.0.1:8000/ in a browser for the chat page
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from pathlib import Path

import torch
import uvicorn

from common.cli import setup_logging
from dataset.tokenizer import TokenizerError
from model.inference import ModelLoadError
from serving.api import create_app
from serving.engine import ChatEngine
from tools.chat import DEFAULT_MODEL, DEFAULT_TOKENIZER, load_chat_model

log = logging.getLogger("serve")

API_KEY_ENV = "WW2LM_API_KEY"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: treat as reachable from outside
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model.pt, step-*.pt or an exported folder")
    parser.add_argument("--tokenizer", type=Path, default=None, help=f"tokenizer folder (default {DEFAULT_TOKENIZER})")
    parser.add_argument("--name", default="ww2lm", help="the model name clients ask for (default ww2lm)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV), help=f"required key (or ${API_KEY_ENV})")
    parser.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without an API key")
    parser.add_argument("--max-queue", type=int, default=64, help="requests waiting or running before 429s")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args(argv)
    if args.max_queue < 1 or not 0 <= args.port < 65536 or (args.threads is not None and args.threads < 1):
        parser.error("need --max-queue >= 1, 0 <= --port < 65536 and --threads >= 1")
    if not args.api_key and not is_loopback(args.host) and not args.insecure:
        parser.error(f"--host {args.host} is reachable from other machines: set --api-key (or pass --insecure)")
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)

    try:
        model, tokenizer = load_chat_model(args.model, args.tokenizer, args.device)
    except (ModelLoadError, TokenizerError) as exc:
        log.error("%s", exc)
        return 2
    engine = ChatEngine(model, tokenizer, args.name, max_queue=args.max_queue)
    log.info(
        "serving model=%s name=%s params=%d context=%d url=http://%s:%d/v1 key=%s",
        args.model,
        args.name,
        model.num_params(),
        model.config.context_length,
        args.host,
        args.port,
        "required" if args.api_key else "none",
    )
    uvicorn.run(create_app(engine, api_key=args.api_key or None), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
