"""Our SentencePiece tokenizer as a Hugging Face fast tokenizer, with a ChatML chat template.

So an exported model folder loads with `AutoTokenizer.from_pretrained` and tokenizes as ours
does (a test compares the ids on the sample corpus and on chat prompts). Built from the loaded
model with the `tokenizers` library, the way transformers' LlamaConverter does it for a
SentencePiece BPE model, but with the options this project trains with: no dummy "▁" prefix
(add_dummy_prefix off), identity normalisation, byte fallback.

- pieces: BPE with every learned piece, merges ranked by the merged piece's id (SentencePiece
  BPE merges the pair whose piece scores highest; its score falls with its id), or Unigram with
  the scores for a unigram model;
- user-defined symbols (ChatML tags, years, months, military terms) become added tokens,
  matched before the model as SentencePiece matches them (longest match, left to right); the
  ChatML tags, `<s>`, `</s>`, `<pad>` and `<unk>` are special;
- normaliser " " -> "▁"; decoder "▁" -> " ", byte fallback, fuse.

The chat template renders `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message and, with
add_generation_prompt, `<|im_start|>assistant\\n`: dataset/chatml.py's render_prompt. One
difference remains: transformers tokenizes the rendered text, so a tag typed inside a message
becomes a control token there, while our ChatEncoder keeps it text (Tokenizer.encode_text).
"""

from __future__ import annotations

from dataset.tokenizer import IM_END, IM_START, WHITESPACE_MARK, Tokenizer

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '" + IM_START + "' + message['role'] + '\\n' + message['content'] + '" + IM_END + "' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '" + IM_START + "assistant\\n' }}{% endif %}"
)


def piece_kinds(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """(special ids, user-defined ids). SentencePiece lays a model out as unk/control ids,
    then the user-defined symbols, then the 256 byte pieces, then the learned pieces."""
    sp = tokenizer.sp
    first_byte = next(i for i in range(sp.vocab_size()) if sp.is_byte(i))
    special = [i for i in range(first_byte) if sp.is_control(i) or sp.is_unknown(i)]
    user_defined = [i for i in range(first_byte) if i not in special]
    return special, user_defined


def to_hf_tokenizer(tokenizer: Tokenizer, model_type: str):
    """A transformers PreTrainedTokenizerFast computing `tokenizer`'s ids; model_type bpe|unigram."""
    from tokenizers import AddedToken, decoders, normalizers  # slow imports, needed only to export
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers.models import BPE, Unigram
    from transformers import PreTrainedTokenizerFast

    sp = tokenizer.sp
    pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size())]
    special, user_defined = piece_kinds(tokenizer)
    added = set(special) | set(user_defined)
    if model_type == "bpe":
        vocab = {piece: i for i, piece in enumerate(pieces)}
        merges = bpe_merges(pieces, skip=added | {i for i in range(len(pieces)) if sp.is_byte(i)})
        model = BPE(vocab=vocab, merges=merges, unk_token=pieces[sp.unk_id()], byte_fallback=True, fuse_unk=True)
    elif model_type == "unigram":
        model = Unigram([(p, sp.get_score(i)) for i, p in enumerate(pieces)], unk_id=sp.unk_id(), byte_fallback=True)
    else:
        raise ValueError(f"model_type {model_type!r}: expected bpe or unigram")
    hf = HFTokenizer(model)
    hf.normalizer = normalizers.Replace(" ", WHITESPACE_MARK)
    hf.decoder = decoders.Sequence([decoders.Replace(WHITESPACE_MARK, " "), decoders.ByteFallback(), decoders.Fuse()])
    chat_tags = {tokenizer.im_start_id, tokenizer.im_end_id}
    hf.add_tokens([AddedToken(pieces[i], normalized=True, special=False) for i in user_defined if i not in chat_tags])
    hf.add_special_tokens(
        [AddedToken(pieces[i], normalized=False, special=True) for i in sorted(set(special) | chat_tags)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=hf,
        bos_token=pieces[sp.bos_id()],
        eos_token=IM_END,  # a chat turn ends here: what generate stops at
        unk_token=pieces[sp.unk_id()],
        pad_token=pieces[sp.pad_id()],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=None,
    )


def bpe_merges(pieces: list[str], skip: set[int]) -> list[tuple[str, str]]:
    """Every split of a learned piece into two pieces of the vocabulary, ranked by the merged
    piece's id (then by the left part's length, as transformers' generate_merges does)."""
    ids = {piece: i for i, piece in enumerate(pieces) if i not in skip}
    merges = []
    for piece, piece_id in ids.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                merges.append((piece_id, len(left), left, right))
    return [(left, right) for _, _, left, right in sorted(merges)]
