"""The offline, deterministic `rules` generator backend: question/answer replies without a model.

For a window and a prompt type it writes the reply text an LLM would write, in the exact
labelled format the type's parser reads (synth/prompt_types.py), so one parser validates
both. Every answer is taken from the window text: wh-questions come from simple sentences
(synth/rules_questions.py) and are answered by their short answer and the sentence itself; statements and blanks come
from usable sentences; distractors for false statements, false-premise questions (wrong_*) and
choices are same-kind entities the window's article never mentions (synth/distractors.py).

Only types that rules can do honestly are supported; rewrites, summaries and "why/how"
reasoning need a real model and raise Unsupported("type_not_supported"). A window without
usable material raises Unsupported with a reason such as "no_date_in_window".

Determinism: each (seed, window id, type name) seeds its own random.Random through SHA-256,
never Python's salted hash(), so replies are identical across runs and processes.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from pathlib import Path

from llm.base import ChatBackend, LLMError
from synth.context_refs import outside_reference
from synth.distractors import Distractors
from synth.english import SPELLED, word_set
from synth.entities import Entity, find_dates, find_proper_names, name_of, number_value, surnames
from synth.entity_index import EntityIndex
from synth.gazetteer import DEFAULT_GAZETTEER
from synth.rules_questions import WhQuestion, lower_first, parse_clause, target_phrase, usable, wh_question

RULES_VERSION = 9  # bump whenever a change alters any reply, so cached work items regenerate

QA_KINDS = {
    "who": ("person",),
    "when": ("date",),
    "where": ("place",),
    "how_many": ("number",),
    "which": ("unit", "operation"),
}
CONTRAST_QA = {
    "contrast_person": "who",
    "contrast_place": "where",
    "contrast_date": "when",
    "contrast_number": "how_many",
}
WRONG_KIND = {"wrong_person": "person", "wrong_place": "place", "wrong_date": "date"}
SWAP_KINDS = ("person", "place", "date", "number", "unit", "operation")
BLANK_KINDS = {
    "fill_blank": ("person", "place", "unit", "operation", "name"),
    "fill_blank_date": ("date",),
    "fill_blank_number": ("number",),
}
FORMATS = {
    **dict.fromkeys([*QA_KINDS, *WRONG_KIND], "qa"),
    **dict.fromkeys(CONTRAST_QA, "contrastive"),
    **dict.fromkeys(["true_statement", "false_statement"], "true_false"),
    **dict.fromkeys(BLANK_KINDS, "fill_blank"),
    "multiple_choice": "multiple_choice",
}
SUPPORTED: frozenset[str] = frozenset(FORMATS)
COMPARATIVE = re.compile(r"\b(?:more than|over|at least|fewer than|less than|under|nearly|almost|up to)\s+$", re.I)
TITLE_STOP = word_set("Battle Siege Operation Invasion Attack Campaign Second First Conference Project The World War")


class Unsupported(Exception):
    """The rules backend cannot write this item; `reason` is counted like a parse failure."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


class Draws(random.Random):
    """The random choices of one (window, prompt type, sample) item.

    `distinct` makes the samples of one (window, type) take different candidates: sample k
    takes the k-th of the candidates in an order seeded without the sample, so three samples
    ask about three facts instead of drawing one fact twice. Everything else (wording,
    distractors) is drawn from the sample's own seed."""

    def __init__(self, seed: int, window_id: str, name: str, sample: int):
        super().__init__(stable_seed(seed, window_id, name, *((sample,) if sample else ())))
        self.draw = sample  # not `sample`: random.Random.sample is a method
        self._order_seed = stable_seed(seed, window_id, name, "order")

    def distinct(self, found: list, wrap: bool = True):
        """The sample's own candidate of `found`; past the last one the order starts again
        (`wrap`) or the item is skipped (`samples_exhausted`: a blank has no other wording)."""
        if self.draw >= len(found) and not wrap:
            raise Unsupported("samples_exhausted")
        order = list(range(len(found)))
        random.Random(self._order_seed).shuffle(order)
        return found[order[self.draw % len(found)]]


def topic_phrase(article: str, is_person: bool) -> str:
    """How a question names its article: "the Battle of Midway", "Operation Barbarossa", a name."""
    if is_person or article.startswith("Operation "):
        return article
    return "the " + (article[4:] if article.startswith("The ") else article)


def mentions_article(question: str, article: str) -> bool:
    """True when the question already names its subject ("Midway", "Nimitz"): no prefix needed."""
    keys = [w for w in re.findall(r"[A-Z][\w-]{2,}", article) if w not in TITLE_STOP]
    return any(re.search(rf"\b{re.escape(k)}\b", question) for k in keys)


def option_text(text: str) -> str:
    return text.lower() if text.lower() in SPELLED else text  # "Two" opening a sentence is "two"


def swappable(sentence: str, entity: Entity) -> bool:
    """Replacing this entity makes the sentence false, not merely vaguer: dates of a single
    event ("on 7 June 1942", not "by 1942"), exact counts (not "more than 3 million")."""
    if entity.kind == "date":
        return entity.detail != "range" and target_phrase(sentence, entity) is not None
    if entity.kind == "number":
        before, after = sentence[: entity.start], sentence[entity.end :]
        in_range = re.search(r"(?:\bto|\band|–|-)\s*$", before) or re.match(r"\s*(?:to|and|–|-)\s*\d", after)
        return not COMPARATIVE.search(before) and not in_range and number_value(entity.text) >= 2
    return True


def fact_name(entity: Entity) -> str:
    """What an entity is, for an explanation: "date", "number of carriers", "army"."""
    if entity.kind == "number":
        return f"number of {entity.detail}" if entity.detail else "number"
    if entity.kind == "unit":
        return entity.detail or "unit"
    return entity.kind


def correction(entity: Entity, wrong: str) -> str:
    """ "It was not the Don but the Oder." """
    the = "the " if entity.detail.endswith("_the") else ""
    if entity.kind == "date":
        return f"The date was not {wrong} but {entity.text}."
    return f"It was not {the}{wrong} but {the}{entity.text}."


class RulesBackend(ChatBackend):
    """A ChatBackend that composes replies from the window and prompt type (no prompt, no model)."""

    name = "rules"
    SUPPORTED = SUPPORTED
    max_in_flight = 1  # pure CPU: threads would only contend for the GIL

    def __init__(self, windows: list[dict], seed: int):
        self.seed = seed
        # Names and distractors are drawn from the whole corpus, so every item depends on all
        # of it: the corpus is part of each item's key (an incremental run equals a fresh one;
        # a changed corpus regenerates every rules item, about a minute on the sample).
        self.corpus = hashlib.sha256("\n".join(w["id"] for w in windows).encode()).hexdigest()[:16]
        self.index = EntityIndex.from_windows(windows)
        self.distractors = Distractors(self.index, windows)
        self._wh: dict[str, tuple[WhQuestion, ...]] = {}
        self._builders: dict[str, Callable[[str, dict, Draws], str]] = {
            **dict.fromkeys(QA_KINDS, self._qa),
            **dict.fromkeys(CONTRAST_QA, self._contrast),
            **dict.fromkeys(WRONG_KIND, self._wrong_premise),
            **dict.fromkeys(BLANK_KINDS, self._blank),
            "true_statement": self._true,
            "false_statement": self._false,
            "multiple_choice": self._choice,
        }

    def fingerprint(self) -> dict:
        gazetteer = hashlib.sha256(Path(DEFAULT_GAZETTEER).read_bytes()).hexdigest()[:12]
        return {
            "backend": self.name,
            "version": RULES_VERSION,
            "seed": self.seed,
            "gazetteer": gazetteer,
            "corpus": self.corpus,
        }

    def compose(self, task, window: dict, sample: int = 0) -> str:
        """ChatBackend.compose: the reply for one (prompt type, window, sample); raises Unsupported."""
        return self.reply(task, window, sample)

    def chat(self, messages: list[dict[str, str]]) -> str:
        raise LLMError("not_a_chat_model", "the rules backend writes replies from a prompt type, not a prompt")

    def reply(self, ptype, window: dict, sample: int = 0) -> str:
        """The reply text for one (prompt type, window), in the type's reply format; another
        `sample` draws other choices (sentence, wording, distractors) from its own seed."""
        if ptype.name not in SUPPORTED:
            raise Unsupported("type_not_supported")
        if ptype.format != FORMATS[ptype.name]:
            raise Unsupported("format_not_supported")
        return self._builders[ptype.name](ptype.name, window, Draws(self.seed, window["id"], ptype.name, sample))

    # --- material ------------------------------------------------------------------------

    def _standalone(self, sentence: str) -> bool:
        """A usable sentence a reader understands without its neighbours: statements and
        blanks are shown alone, so "Instead, it brought ...", "these facilities" or a "he"
        with no person before it cannot be used."""
        people = tuple((e.start, e.end) for e in self.index.entities(sentence) if e.kind == "person")
        return usable(sentence) and outside_reference(sentence, people=people) is None

    def _entities(self, window: dict, kinds: tuple[str, ...]) -> list[tuple[str, Entity]]:
        return [
            (s, e)
            for s in window["sentences"]
            if self._standalone(s)
            for e in self._with_names(s, "name" in kinds)
            if e.kind in kinds
        ]

    def _with_names(self, sentence: str, names: bool) -> tuple[Entity, ...]:
        """The sentence's entities, and with `names` its other proper names too, in order."""
        entities = self.index.entities(sentence)
        if not names:
            return entities
        extra = find_proper_names(sentence, self.index.is_proper, self.index.gazetteer.demonyms, entities)
        return tuple(sorted((*entities, *extra), key=lambda e: e.start))

    def _missing(self, window: dict, kinds: tuple[str, ...], what: str) -> Unsupported:
        found = any(e.kind in kinds for s in window["sentences"] for e in self.index.entities(s))
        return Unsupported(f"no_{what}_question" if found else f"no_{'_or_'.join(kinds)}_in_window")

    def _sentence_questions(self, sentence: str) -> tuple[WhQuestion, ...]:
        """Every wh-question a sentence gives (memoised: windows overlap, types share them)."""
        if sentence not in self._wh:
            entities = self.index.entities(sentence)
            clause = parse_clause(sentence, entities)
            questions = [wh_question(clause, e, self.index.is_proper) for e in entities] if clause else []
            self._wh[sentence] = tuple(
                q for q in questions if q and (q.target.kind != "number" or number_value(q.target.text) >= 2)
            )
        return self._wh[sentence]

    def _questions(self, window: dict, kinds: tuple[str, ...]) -> list[tuple[str, WhQuestion]]:
        article = window["article"]
        return [
            (s, q)
            for s in window["sentences"]
            for q in self._sentence_questions(s)
            if q.target.kind in kinds and self._anchored(q, article)
        ]

    def _anchored(self, question: WhQuestion, article: str, *also_hidden: Entity) -> bool:
        """A question whose answer the article's title names ("Erwin Rommel", "Guadalcanal
        campaign") gets no "In the history of ..." prefix (it would give the answer away), so
        unless it names its subject itself it must carry a date to stand alone: "Where did
        about 11,000 Marines go ashore?" could be anywhere, "Who arrived on Iwo Jima in June
        1944?" is one fact."""
        if not self._hides_answer(article, question.target, *also_hidden) or mentions_article(question.body, article):
            return True
        return bool(find_dates(question.body))

    def _hides_answer(self, article: str, *hidden: Entity) -> bool:
        keys = [k for e in hidden for k in (surnames(name_of(e.text)) if e.kind == "person" else [e.text])]
        return any(k in article for k in keys)

    def _contextualise(self, body: str, article: str, rng: random.Random, *hidden: Entity) -> str:
        """Name the article when the question does not ("In the history of the Battle of
        Midway, when ...?"), unless the title would give away a `hidden` entity (the answer)."""
        if mentions_article(body, article) or self._hides_answer(article, *hidden):
            return body
        is_person = article in self.index.known.names
        lead = rng.choice(
            ["According to the biography of", "In the life of"]
            if is_person
            else ["According to the history of", "In the history of"]
        )
        return f"{lead} {topic_phrase(article, is_person)}, {body[0].lower()}{body[1:]}"

    def _statement_context(self, sentence: str, article: str, rng: random.Random, *hidden: Entity) -> str:
        """A statement or blank names its article too ("In the history of the T-34, the tank
        was supplied to ..."): shown alone, "the tank" or "the landings" needs it."""
        if mentions_article(sentence, article) or self._hides_answer(article, *hidden):
            return sentence
        is_person = article in self.index.known.names
        lead = rng.choice(
            ["According to the biography of", "In the life of"]
            if is_person
            else ["According to the history of", "In the history of"]
        )
        return f"{lead} {topic_phrase(article, is_person)}, {lower_first(sentence, self.index.is_proper)}"

    def _with_distractors(
        self, window: dict, found: list[tuple[str, WhQuestion]], n: int, rng: random.Random
    ) -> tuple[str, WhQuestion, list[str]]:
        """One question that has `n` distractors, and those distractors."""
        article = window["article"]
        found = [(s, q) for s, q in found if len(self.distractors.for_sentence(article, s, q.target)) >= n]
        if not found:
            raise Unsupported("no_distractors")
        sentence, question = rng.choice(found)
        return sentence, question, rng.sample(self.distractors.for_sentence(article, sentence, question.target), n)

    # --- builders, one per reply shape -----------------------------------------------------

    def _qa(self, name: str, window: dict, rng: Draws) -> str:
        """A wh-question answered by its short answer and then its own sentence, which states it."""
        found = self._questions(window, QA_KINDS[name])
        if not found:
            raise self._missing(window, QA_KINDS[name], name)
        sentence, question = rng.distinct(found)
        body = self._contextualise(question.body, window["article"], rng, question.target)
        # The short answer first (what a quiz asks for), then the sentence that states it,
        # unless the sentence already opens with it ("Rommel began to pull back ...").
        short = question.answer.rstrip(".")
        lead = "" if sentence.startswith(short) else f"{question.answer} "
        return f"Question: {body}\nAnswer: {lead}{sentence}"

    def _wrong_premise(self, name: str, window: dict, rng: random.Random) -> str:
        """A question that swaps one person/place/date of its sentence for a distractor ("When
        did Rommel surrender in Stalingrad?"); the answer corrects it and states the fact."""
        kind, article, found = WRONG_KIND[name], window["article"], []
        for sentence in window["sentences"]:
            premises = [e for e in self.index.entities(sentence) if e.kind == kind and swappable(sentence, e)]
            for question in self._sentence_questions(sentence):
                found.extend(
                    (sentence, question, premise)
                    for premise in premises
                    if premise != question.target
                    and self._anchored(question, article, premise)
                    and question.body.count(premise.text) == 1
                    and self.distractors.for_sentence(article, sentence, premise)
                )
        if not found:
            raise self._missing(window, (kind,), name)
        sentence, question, premise = rng.choice(found)
        wrong = rng.choice(self.distractors.for_sentence(article, sentence, premise))
        body = self._contextualise(question.body.replace(premise.text, wrong), article, rng, question.target, premise)
        return f"Question: {body}\nAnswer: {correction(premise, wrong)} {sentence}"

    def _contrast(self, name: str, window: dict, rng: random.Random) -> str:
        kinds = QA_KINDS[CONTRAST_QA[name]]
        found = self._questions(window, kinds)
        if not found:
            raise self._missing(window, kinds, CONTRAST_QA[name])
        sentence, question, (wrong,) = self._with_distractors(window, found, 1, rng)
        right, wrong = option_text(question.target.text), option_text(wrong)
        options = [right, wrong] if rng.random() < 0.5 else [wrong, right]
        body = self._contextualise(question.body, window["article"], rng, question.target)
        return (
            f"Question: {body[:-1]}, {options[0]} or {options[1]}?\nOption A: {options[0]}\nOption B: {options[1]}\n"
            f"Answer: {right}\nExplanation: {sentence}\nFeature: {kinds[0]}"
        )

    def _choice(self, name: str, window: dict, rng: random.Random) -> str:
        found = self._questions(window, ("person", "date", "place", "number", "unit", "operation"))
        if not found:
            raise Unsupported("no_question_in_window")
        _, question, distractors = self._with_distractors(window, found, 3, rng)
        options = [option_text(t) for t in (question.target.text, *distractors)]
        rng.shuffle(options)
        letter = "ABCD"[options.index(option_text(question.target.text))]
        lines = "\n".join(f"{'ABCD'[i]}) {option}" for i, option in enumerate(options))
        body = self._contextualise(question.body, window["article"], rng, question.target)
        return f"Question: {body}\n{lines}\nAnswer: {letter}"

    def _true(self, name: str, window: dict, rng: random.Random) -> str:
        """A sentence of the window; the explanation confirms one of its facts by name, so
        answers teach which detail is right rather than repeat one sentence."""
        found = [
            (s, e)
            for s in window["sentences"]
            if self._standalone(s)
            for e in self.index.entities(s)
            if e.kind != "place" and swappable(s, e) or e.kind == "place" and target_phrase(s, e)
        ]
        if not found:
            raise Unsupported("no_statement_in_window")
        sentence, entity = rng.choice(found)
        article = window["article"]
        is_person = article in self.index.known.names
        record = f"the biography of {article}" if is_person else f"the history of {topic_phrase(article, False)}"
        fact = fact_name(entity)
        explanation = rng.choice(
            [
                f"The {fact} is right: {option_text(entity.text)}.",
                f"This matches {record}: the {fact} was {option_text(entity.text)}.",
                f"{entity.text[0].upper()}{entity.text[1:]} is the correct {fact}, as {record} records.",
            ]
        )
        statement = self._statement_context(sentence, article, rng)
        return f"Statement: {statement}\nAnswer: True\nExplanation: {explanation}"

    def _false(self, name: str, window: dict, rng: random.Random) -> str:
        article = window["article"]
        found = [(s, e) for s, e in self._entities(window, SWAP_KINDS) if swappable(s, e)]
        found = [(s, e) for s, e in found if self.distractors.for_sentence(article, s, e)]
        if not found:
            raise self._missing(window, SWAP_KINDS, "swap")
        sentence, entity = rng.choice(found)
        wrong = rng.choice(self.distractors.for_sentence(article, sentence, entity))
        if entity.text[:1].isupper() and wrong[:1].islower():
            wrong = wrong[0].upper() + wrong[1:]
        statement = self._statement_context(sentence[: entity.start] + wrong + sentence[entity.end :], article, rng)
        return f"Statement: {statement}\nAnswer: False\nExplanation: {correction(entity, wrong)} {sentence}"

    def _blank(self, name: str, window: dict, rng: Draws) -> str:
        """One entity blanked out; never the sentence's first words ("____ commanded ...")."""
        kinds = BLANK_KINDS[name]
        found = [(s, e) for s, e in self._entities(window, kinds) if e.start > 0 and s.count(e.text) == 1]
        if not found:
            raise self._missing(window, kinds, "blank")
        sentence, entity = rng.distinct(found, wrap=False)
        blanked = self._statement_context(
            sentence[: entity.start] + "____" + sentence[entity.end :], window["article"], rng, entity
        )
        return f"Sentence: {blanked}\nAnswer: {entity.text}"
