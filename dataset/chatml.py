"""ChatML rendering and encoding with the training loss mask.

A conversation renders as (README.md, "Stage reference: encode"):
  <|im_start|>user\\n{q}<|im_end|>\\n<|im_start|>assistant\\n{a}<|im_end|>\\n

It is encoded segment by segment (tag ids, role header, content, tag, newline), so each tag
is exactly its own id and the mask boundaries fall exactly between segments. The mask is 1
on the assistant content and the assistant's `<|im_end|>` (the model must learn to stop)
and 0 on everything else: the user turn, every `<|im_start|>role\\n` header, and the "\\n"
after each `<|im_end|>` (generation stops at `<|im_end|>`, so that newline is never
predicted by the model; it only separates turns in the context).

Content is always encoded as text (`Tokenizer.encode_text`): a `<|im_start|>` a user types
becomes ordinary pieces, so typed text can never forge a turn. Chat, evaluate and the server
all build prompts here.

With the project's tokenizer (add_dummy_prefix off, "\\n" only ever a byte piece, the tags
forced symbols) the segment-wise ids equal `tokenizer.encode(render(messages))`; a test keeps
it so, which means a prompt built from text at inference tokenizes as it did in training.

Example:
  ids, mask = encode_chat(tok, [{"role": "user", "content": "Who?"},
                                {"role": "assistant", "content": "Paulus."}])
  prompt_ids = encode_prompt(tok, [{"role": "user", "content": "Who?"}])  # ends "assistant\\n"
"""

from __future__ import annotations

from collections.abc import Sequence

from dataset.tokenizer import IM_END, IM_START, Tokenizer

ROLES = ("user", "assistant")  # what training conversations hold
# what a prompt may hold: a client's system message renders as a ChatML system turn, as
# chat templates do, though the model never saw one in training
PROMPT_ROLES = ("system", *ROLES)


def turn_text(role: str, content: str) -> str:
    return f"{IM_START}{role}\n{content}{IM_END}\n"


def render(messages: Sequence[dict]) -> str:
    """The ChatML text of a conversation."""
    return "".join(turn_text(m["role"], m["content"]) for m in messages)


def render_prompt(messages: Sequence[dict]) -> str:
    """The text an inference run feeds the model: the turns so far, then the assistant header."""
    return render(messages) + f"{IM_START}assistant\n"


def message_problem(messages: object) -> str | None:
    """Why `messages` cannot be a training conversation (a drop reason), or None.

    Training conversations alternate user/assistant, start with the user and end with the
    assistant; every content is a non-blank string without a ChatML tag in it (a tag in the
    text would encode as the tag id and move the mask boundary).
    """
    if not isinstance(messages, list) or not messages:
        return "no_messages"
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return "bad_message"
    roles = [m["role"] for m in messages]
    if len(roles) % 2 or roles != [ROLES[i % 2] for i in range(len(roles))]:
        return "wrong_roles"
    for m in messages:
        content = m.get("content")
        if not isinstance(content, str) or not content.strip():
            return "empty_content"
        if IM_START in content or IM_END in content:
            return "chat_tag_in_content"
    return None


class ChatEncoder:
    """Encodes conversations with one tokenizer; the fixed segments are encoded once."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.headers = {role: [tokenizer.im_start_id, *tokenizer.encode(f"{role}\n")] for role in PROMPT_ROLES}
        self.newline = tokenizer.encode("\n")

    def encode(self, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
        """(ids, mask) of a whole conversation; mask 1 = the loss is taken on that token."""
        ids: list[int] = []
        mask: list[int] = []
        # content is text: a tag typed into it stays ordinary pieces (never forges a turn)
        contents = self.tokenizer.encode_text_batch([m["content"] for m in messages])
        for message, content in zip(messages, contents, strict=True):
            if message["role"] not in self.headers:
                raise ValueError(f"message role {message['role']!r}: expected one of {', '.join(PROMPT_ROLES)}")
            trained = int(message["role"] == "assistant")
            header = self.headers[message["role"]]
            ids += header
            mask += [0] * len(header)
            ids += [*content, self.tokenizer.im_end_id]
            mask += [trained] * (len(content) + 1)  # the content and its <|im_end|>
            ids += self.newline
            mask += [0] * len(self.newline)
        return ids, mask

    def encode_prompt(self, messages: Sequence[dict]) -> list[int]:
        """Ids of `render_prompt(messages)`, built the way training ids were."""
        ids, _ = self.encode(messages) if messages else ([], [])
        return ids + self.headers["assistant"]


def encode_chat(tokenizer: Tokenizer, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
    return ChatEncoder(tokenizer).encode(messages)


def encode_prompt(tokenizer: Tokenizer, messages: Sequence[dict]) -> list[int]:
    return ChatEncoder(tokenizer).encode_prompt(messages)
