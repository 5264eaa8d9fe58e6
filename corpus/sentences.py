"""English sentence splitting with pysbd, taught the abbreviations military history uses.

pysbd (a port of the Pragmatic Segmenter's golden rules) already knows "Lt.", "Gen.",
"U.S." and month abbreviations, but splits after "c." and "approx." before a number
("c. 1.5 million"). Adding them to its abbreviation lists (and to the ones that may precede
a number) fixes that without a post-hoc merge.
"""

from __future__ import annotations

import functools

import pysbd
from pysbd.lang.english import English

EXTRA_ABBREVIATIONS = ["c", "ca", "approx", "est", "fl", "cf", "div", "bn", "regt", "bde", "cpt"]


class MilitaryEnglish(English):
    class Abbreviation(English.Abbreviation):
        ABBREVIATIONS = English.Abbreviation.ABBREVIATIONS + EXTRA_ABBREVIATIONS
        NUMBER_ABBREVIATIONS = English.Abbreviation.NUMBER_ABBREVIATIONS + ["c", "ca", "approx", "est"]


@functools.lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    segmenter = pysbd.Segmenter(language="en", clean=False)
    segmenter.language_module = MilitaryEnglish
    return segmenter


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph, stripped, in order; empty text gives []."""
    if not text.strip():
        return []
    return [s.strip() for s in _segmenter().segment(text) if s.strip()]
