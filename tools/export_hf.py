"""The transformers side of `tools/export --format transformers`: a folder that
`AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load offline.

Writes config.json + model.safetensors (a GPT2LMHeadModel with an untied head, our weights:
model/hf_import.py to_hf_gpt2), generation_config.json (stops at `<|im_end|>`), and
tokenizer.json + tokenizer_config.json (dataset/hf_tokenizer.py: our SentencePiece model as a
fast tokenizer, the ChatML tags special, a ChatML chat_template). Chat, evaluate and serve load
the same folder (model/inference.py reads a GPT-2 config.json).
"""

from __future__ import annotations

from pathlib import Path

from dataset.hf_tokenizer import to_hf_tokenizer
from dataset.tokenizer import Tokenizer
from model.gpt import GPT
from model.hf_import import to_hf_gpt2


def write_transformers(folder: Path, model: GPT, tokenizer: Tokenizer, model_type: str, meta: dict) -> None:
    """Save `model` and `tokenizer` into `folder` in transformers' layout."""
    hf_model = to_hf_gpt2(model).to("cpu")
    hf_model.config.eos_token_id = tokenizer.im_end_id
    hf_model.config.pad_token_id = tokenizer.pad_id
    hf_model.config.bos_token_id = tokenizer.sp.bos_id()
    for key in ("variant", "step"):  # read back by tools/export model_metadata, ignored by transformers
        setattr(hf_model.config, key, meta.get(key))
    hf_model.generation_config.eos_token_id = tokenizer.im_end_id
    hf_model.generation_config.pad_token_id = tokenizer.pad_id
    hf_model.generation_config.bos_token_id = tokenizer.sp.bos_id()
    hf_model.save_pretrained(folder, safe_serialization=True)
    to_hf_tokenizer(tokenizer, model_type).save_pretrained(folder)
