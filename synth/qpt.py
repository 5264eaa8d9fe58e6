"""Question Pre-Training: each raw window as the answer to several user phrasings.

The styles of data/qpt_templates.yaml (load_styles), their rendering with case, end
punctuation and realistic typos (render, add_typos), and the records of a window
(window_records, wrap_windows). The stage entry point is stages/qpt_wrap.py; README.md,
"qpt-wrap", describes the stage.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from common.progress import progress
from synth.context_refs import outside_reference
from synth.english import PRONOUNS
from synth.entity_index import EntityIndex
from synth.qpt_entities import build_index
from synth.qpt_fields import articles_info, proper_nouns, window_fields

FIELDS = {
    "article",
    "subject",
    "topic",
    "event",
    "thing",
    "name",
    "place",
    "section",
    "section_of",
    "year",
    "entity",
    "person",
}
CASES = {"sentence", "lower", "upper", "keep"}
# What a template asks about, by its fields: the whole article ("Tell me about {subject}"), a
# section ("Summarize {section_of} {subject}"), or something the window itself names ({year},
# {entity}, {person}). A broad question fits only a window that opens its article or section.
SECTION_FIELDS = {"section", "section_of"}
WINDOW_FIELDS = {"year", "entity", "person"}
# QWERTY neighbours: most real typos hit an adjacent key (or drop, double or swap a letter).
KEY_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
NEIGHBOURS = {
    c: "".join(
        KEY_ROWS[r2][c2]
        for r2 in (r - 1, r, r + 1)
        if 0 <= r2 < 3
        for c2 in (i - 1, i, i + 1)
        if 0 <= c2 < len(KEY_ROWS[r2]) and (r2, c2) != (r, i)
    )
    for r, row in enumerate(KEY_ROWS)
    for i, c in enumerate(row)
}


class TemplateError(ValueError):
    """data/qpt_templates.yaml is malformed; names the style."""


@dataclass(frozen=True)
class QptParams:
    phrasings_per_window: int  # records (each a different style) per window
    seed: int  # with the window id, seeds each window's own random.Random


@dataclass(frozen=True)
class Style:
    name: str
    templates: tuple[str, ...]
    case: str = "sentence"  # sentence | lower | upper | keep
    strip_end: bool = False  # drop the final ?.! (search-box and fast-typing styles)
    typos: int = 0  # realistic typos added after rendering


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def load_styles(path: str | Path) -> list[Style]:
    """Read and validate the styles; file order is kept (it is part of the sampling)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path}: cannot read templates: {exc}") from exc
    entries = raw.get("styles") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TemplateError(f"{path}: expected a top-level 'styles:' list")
    styles, seen = [], set()
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: style #{number} ({entry.get('name', '?') if isinstance(entry, dict) else '?'})"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TemplateError(f"{where}: expected a mapping with a name")
        unknown = set(entry) - set(Style.__dataclass_fields__)
        if unknown:
            raise TemplateError(f"{where}: unknown key(s) {sorted(unknown)}")
        templates = entry.get("templates")
        if not isinstance(templates, list) or not templates or not all(isinstance(t, str) and t for t in templates):
            raise TemplateError(f"{where}: 'templates' must be a non-empty list of strings")
        for template in templates:
            try:
                bad = template_fields(template) - FIELDS
            except ValueError as exc:
                raise TemplateError(f"{where}: bad template {template!r}: {exc}") from exc
            if bad:
                raise TemplateError(
                    f"{where}: unknown field(s) {sorted(bad)} in {template!r}; allowed: {sorted(FIELDS)}"
                )
        if entry["name"] in seen:
            raise TemplateError(f"{where}: duplicate name")
        if entry.get("case", "sentence") not in CASES:
            raise TemplateError(f"{where}: case must be one of {sorted(CASES)}")
        if not isinstance(entry.get("typos", 0), int) or entry.get("typos", 0) < 0:
            raise TemplateError(f"{where}: typos must be an integer >= 0")
        seen.add(entry["name"])
        styles.append(Style(**{**entry, "templates": tuple(templates)}))
    return styles


def typo_word(word: str, rng: random.Random) -> str:
    """One realistic slip inside a word (never its first letter): drop, double, swap, neighbour."""
    positions = range(1, len(word))
    kind = rng.choice(["drop", "double", "swap", "neighbour"])
    if kind == "swap":
        swaps = [i for i in range(1, len(word) - 1) if word[i] != word[i + 1]]
        if swaps:
            i = rng.choice(swaps)
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        kind = "drop"
    i = rng.choice(positions)
    if kind == "neighbour" and word[i].lower() in NEIGHBOURS:
        key = rng.choice(NEIGHBOURS[word[i].lower()])
        return word[:i] + (key.upper() if word[i].isupper() else key) + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1 :]


def add_typos(text: str, count: int, rng: random.Random) -> str:
    """`count` typos in different words of four letters or more; the text always changes."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    for i in rng.sample(candidates, min(count, len(candidates))):
        words[i] = typo_word(words[i], rng)
    return " ".join(words)


def render(template: str, fields: dict[str, str], style: Style, rng: random.Random) -> str:
    text = template.format(**fields)
    if style.case == "sentence":
        text = text[:1].upper() + text[1:]
    elif style.case == "lower":
        text = text.lower()
    elif style.case == "upper":
        text = text.upper()
    if style.strip_end:
        text = text.rstrip("?.! ")
    return add_typos(text, style.typos, rng) if style.typos else text


def record_id(window_id: str, style: str, template: str) -> str:
    return hashlib.sha256(f"{window_id}\x1f{style}\x1f{template}".encode()).hexdigest()[:16]


def template_scope(template: str) -> str:
    """ "window", "section" or "article": how much of the article the question asks about."""
    fields = template_fields(template)
    return "window" if fields & WINDOW_FIELDS else "section" if fields & SECTION_FIELDS else "article"


def window_scopes(window: dict) -> set[str]:
    """The scopes a window answers: all at the article's start, section and window questions
    where a section begins, otherwise only questions about what the window names."""
    if window["start"] == 0:
        return {"article", "section", "window"}
    return {"section", "window"} if window["opens_section"] else {"window"}


def starts_mid_story(sentence: str, index: EntityIndex) -> bool:
    """A sentence that cannot open an answer: it opens on a pronoun ("He ...", "These ...") or
    leans on an earlier one ("After Iwo Jima he ...", "Meanwhile, ...": synth/context_refs.py,
    told where people are named so that "Iwo Jima" is no antecedent of "he")."""
    if sentence.split(maxsplit=1)[:1] in ([p] for p in PRONOUNS):
        return True
    people = tuple((e.start, e.end) for e in index.entities(sentence) if e.kind == "person")
    return outside_reference(sentence, people=people) is not None


def answer_window(window: dict, index: EntityIndex) -> dict | None:
    """The window without its leading sentences that start mid-story: an answer must not.
    None when under half of the window is left."""
    sentences = window["sentences"]
    skip = next((i for i, s in enumerate(sentences) if not starts_mid_story(s, index)), None)
    if skip is None or len(sentences) - skip < len(sentences) / 2:
        return None
    if skip == 0:
        return window
    kept = sentences[skip:]
    return {
        **window,
        "sentences": kept,
        "text": " ".join(kept),
        "opens_section": False,
        "start": window["start"] + skip,
    }


def window_records(window: dict, fields: dict[str, str], styles: list[Style], n: int, rng: random.Random) -> list[dict]:
    """Up to n records in n distinct styles, each with a distinct question that fits the window."""
    scopes = window_scopes(window)
    usable = [
        (s, [t for t in s.templates if template_fields(t) <= fields.keys() and template_scope(t) in scopes])
        for s in styles
    ]
    usable = [(s, ts) for s, ts in usable if ts]
    rng.shuffle(usable)
    records, questions = [], set()
    for style, templates in usable:
        if len(records) == n:
            break
        template = rng.choice(templates)
        question = render(template, fields, style, rng)
        if question in questions:
            continue
        questions.add(question)
        records.append(
            {
                "id": record_id(window["id"], style.name, template),
                "kind": "qpt",
                "type": style.name,
                "window": window["id"],
                "article": window["article"],
                "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": window["text"]}],
                "meta": {"generator": "qpt", "style": style.name, "template": template},
            }
        )
    return records


def wrap_windows(windows: list[dict], styles: list[Style], params: QptParams, stats: Counter) -> Iterator[dict]:
    info = articles_info(windows)
    proper = proper_nouns(s for w in windows for s in w["sentences"])
    index = build_index(windows)
    for window in progress(windows, desc="qpt_wrap", unit="window"):
        # a string seed is hashed with SHA-512 by random.seed: stable across runs and machines
        rng = random.Random(f"{params.seed}\x1f{window['id']}")
        stats["windows"] += 1
        answer = answer_window(window, index)
        if answer is None:
            stats["windows_mid_story"] += 1
            continue
        fields = window_fields(answer, info[window["article"]], proper, index, rng)
        records = window_records(answer, fields, styles, params.phrasings_per_window, rng)
        if len(records) < params.phrasings_per_window:
            stats["windows_short_of_styles"] += 1
        yield from records
