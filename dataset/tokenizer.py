"""The SentencePiece tokenizer as the rest of the project sees it: load, encode, decode, ids.

A tokenizer folder (written by `python -m stages.tokenizer`) holds `spm.model`, `spm.vocab`
and `tokenizer.json`, a manifest with the vocabulary size and the special ids. `Tokenizer.load`
takes that folder or an `.model` file and fails with a `TokenizerError` naming the file when it
is missing or not a SentencePiece model.

Ids: 0 `<unk>` (never produced: byte fallback), 1 `<s>`, 2 `</s>`, 3 `<pad>`, 4 `<|im_start|>`,
5 `<|im_end|>`, then the other forced symbols, the 256 byte pieces and the learned pieces.
`eos_id` is `<|im_end|>`: a chat model stops at the end of its turn, and that is the token the
loss mask trains it to emit (README.md, "Stage reference: encode").

decode(encode(x)) == x for any text (byte fallback, identity normalization, whitespace kept)
except one character: a literal "▁" (U+2581) in the input decodes as a space, because
SentencePiece uses it as its own space mark.

Example:
  tok = Tokenizer.load("data/tokenizer")
  ids = tok.encode("in June 1944,")      # ['in', '▁June', '▁1944', ',']
  assert tok.decode(ids) == "in June 1944,"
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import sentencepiece as spm

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
MODEL_FILE = "spm.model"
VOCAB_FILE = "spm.vocab"
MANIFEST_FILE = "tokenizer.json"
# Fixed special ids, passed to the trainer (unk_id/bos_id/eos_id/pad_id in the SentencePiece
# training options); the ChatML tags come next as the first user-defined symbols.
UNK_ID, BOS_ID, EOS_ID, PAD_ID = 0, 1, 2, 3
WHITESPACE_MARK = "\u2581"  # "▁": SentencePiece's escaped space (escape_whitespaces)
# SentencePiece matches user-defined symbols anywhere in the input, so a tag typed as text would
# encode as the control id; encode_text cuts each tag after its first character to prevent that.
CHAT_TAG = re.compile(f"({re.escape(IM_START)}|{re.escape(IM_END)})")


class TokenizerError(ValueError):
    """A tokenizer file is missing, unreadable or not what the project expects."""


class Tokenizer:
    """A loaded SentencePiece model plus the ids the ChatML code needs."""

    def __init__(self, processor: spm.SentencePieceProcessor, source: str = "<memory>") -> None:
        self.sp = processor
        self.source = source
        self.im_start_id = self._single_id(IM_START)
        self.im_end_id = self._single_id(IM_END)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load a tokenizer folder (with spm.model) or a .model file."""
        path = Path(path)
        model = path / MODEL_FILE if path.is_dir() else path
        if not model.is_file():
            raise TokenizerError(f"{model}: tokenizer model not found (run the tokenizer stage first)")
        return cls.from_bytes(model.read_bytes(), str(model))

    @classmethod
    def from_bytes(cls, model_proto: bytes, source: str = "<memory>") -> Tokenizer:
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model_proto)
        except (RuntimeError, OSError, TypeError) as exc:
            raise TokenizerError(f"{source}: not a valid SentencePiece model ({exc})") from exc
        if processor.vocab_size() == 0:
            raise TokenizerError(f"{source}: not a valid SentencePiece model (empty vocabulary)")
        return cls(processor, source)

    def _single_id(self, piece: str) -> int:
        piece_id = self.sp.piece_to_id(piece)
        if self.sp.id_to_piece(piece_id) != piece or self.sp.encode(piece) != [piece_id]:
            raise TokenizerError(f"{self.source}: '{piece}' is not a single token in this model")
        return piece_id

    @property
    def vocab_size(self) -> int:
        return self.sp.vocab_size()

    @property
    def eos_id(self) -> int:
        """The stop token of a chat turn: `<|im_end|>`."""
        return self.im_end_id

    @property
    def pad_id(self) -> int:
        return self.sp.pad_id()

    @property
    def unk_id(self) -> int:
        return self.sp.unk_id()

    def encode(self, text: str, eos: bool = False) -> list[int]:
        """Token ids of `text`; `eos=True` appends `<|im_end|>`."""
        ids = self.sp.encode(text)
        return [*ids, self.eos_id] if eos else ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts)

    def encode_text(self, text: str) -> list[int]:
        """Ids of `text` as plain text: a ChatML tag in it ("<|im_start|>" typed by a user)
        becomes ordinary pieces, never the tag's control id, so text cannot forge a turn
        (prompt injection). Equal to `encode` for text without a tag; decodes back to `text`."""
        if IM_START not in text and IM_END not in text:
            return self.sp.encode(text)
        # the tags split the text; each tag is encoded as "<" + the rest, neither of which is a tag
        parts = [
            p for part in CHAT_TAG.split(text) for p in ((part[:1], part[1:]) if CHAT_TAG.fullmatch(part) else (part,))
        ]
        return [i for ids in self.sp.encode([p for p in parts if p]) for i in ids]

    def encode_text_batch(self, texts: list[str]) -> list[list[int]]:
        """`encode_text` of each text; one SentencePiece call when no text holds a tag."""
        if any(IM_START in t or IM_END in t for t in texts):
            return [self.encode_text(t) for t in texts]
        return self.sp.encode(texts)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([int(i) for i in ids])

    def pieces(self, text: str) -> list[str]:
        """The pieces of `text` (for tests and debugging)."""
        return self.sp.encode(text, out_type=str)

    def id_to_piece(self, piece_id: int) -> str:
        return self.sp.id_to_piece(int(piece_id))


def read_manifest(folder: str | Path) -> dict:
    """The tokenizer.json manifest of a tokenizer folder."""
    path = Path(folder) / MANIFEST_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TokenizerError(f"{path}: tokenizer manifest not found (run the tokenizer stage first)") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"{path}: not valid JSON ({exc})") from exc
