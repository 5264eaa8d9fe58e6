"""The GGUF side of `tools/export --format gguf`: model.gguf for llama.cpp and Ollama.

llama.cpp runs the GPT-2 architecture ("gpt2"): learned positions, LayerNorm with biases,
fused QKV, GELU MLP, a separate output matrix (our head is untied). Tensor names come from the
gguf package's own map of transformers' GPT-2 names, which our GPT shares (nanoGPT layout);
our weights are nn.Linear (out, in), the orientation llama.cpp expects (transformers' Conv1D is
the transpose, which its converter undoes). Everything is stored as float32: the models are
small, and quantising is one `llama-quantize` away.

The tokenizer goes in as llama.cpp's SentencePiece kind ("llama"): every piece with its score
and type (control, user-defined for the ChatML tags and forced terms, byte, normal), no space
prefix (add_dummy_prefix is off in training), no BOS added, `<|im_end|>` as end of turn, and
the ChatML chat template.
"""

from __future__ import annotations

from pathlib import Path

from dataset.hf_tokenizer import CHAT_TEMPLATE, piece_kinds
from dataset.tokenizer import Tokenizer
from model.gpt import GPT

GGUF_FILE = "model.gguf"


def write_gguf(path: Path, model: GPT, tokenizer: Tokenizer, name: str) -> None:
    """Write `model` and `tokenizer` as one GGUF file at `path`."""
    import gguf  # needed only for this format

    config = model.config
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT2])
    writer.add_name(name)
    writer.add_context_length(config.context_length)
    writer.add_embedding_length(config.n_embd)
    writer.add_feed_forward_length(4 * config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_head_count(config.n_head)
    writer.add_layer_norm_eps(config.layer_norm_eps)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    add_tokenizer(writer, tokenizer, gguf)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, config.n_layer)
    for key, tensor in model.state_dict().items():
        target = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ValueError(f"{key}: no GGUF name for this GPT-2 tensor")
        writer.add_tensor(target, tensor.detach().cpu().float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def add_tokenizer(writer, tokenizer: Tokenizer, gguf) -> None:
    sp = tokenizer.sp
    special, user_defined = piece_kinds(tokenizer)
    types = []
    for i in range(sp.vocab_size()):
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif i in special:
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.USER_DEFINED if i in user_defined else gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([sp.id_to_piece(i) for i in range(sp.vocab_size())])
    writer.add_token_scores([sp.get_score(i) for i in range(sp.vocab_size())])
    writer.add_token_types([int(t) for t in types])
    writer.add_unk_token_id(sp.unk_id())
    writer.add_bos_token_id(sp.bos_id())
    writer.add_eos_token_id(tokenizer.im_end_id)  # a chat turn ends here
    writer.add_eot_token_id(tokenizer.im_end_id)
    writer.add_pad_token_id(sp.pad_id())
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHAT_TEMPLATE)
