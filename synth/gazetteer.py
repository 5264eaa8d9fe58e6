"""The gazetteer (data/gazetteer.yaml): WWII places by group, ranks and titles, unranked people.

Loaded once per path into a frozen `Gazetteer` whose compiled patterns are built lazily; a
place listed in two groups is an error, because the group is what a distractor must share.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_GAZETTEER = Path(__file__).resolve().parent.parent / "data" / "gazetteer.yaml"


@dataclass(frozen=True)
class Gazetteer:
    places: dict[str, str]  # name -> group
    ranks: tuple[str, ...]
    non_names: frozenset[str]
    people: tuple[str, ...]
    demonyms: frozenset[str] = frozenset()  # "American", "Soviet": proper adjectives

    @functools.cached_property
    def place_pattern(self) -> re.Pattern:
        names = sorted(self.places, key=lambda n: (-len(n), n))  # longest first: "Midway Atoll" > "Midway"
        return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-])")

    @functools.cached_property
    def rank_words(self) -> frozenset[str]:
        return frozenset(w for rank in self.ranks for w in rank.split())

    @functools.cached_property
    def rank_pattern(self) -> re.Pattern:
        ranks = sorted(self.ranks, key=lambda r: (-len(r), r))
        return re.compile(r"(?<![\w.])(?:" + "|".join(map(re.escape, ranks)) + r")(?:\s+Sir)?(?=\s)")


@functools.lru_cache(maxsize=4)
def load_gazetteer(path: str | Path = DEFAULT_GAZETTEER) -> Gazetteer:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    places: dict[str, str] = {}
    for group, names in raw["places"].items():
        for name in names:
            if name in places:
                raise ValueError(f"{path}: place {name!r} is in both {places[name]} and {group}")
            places[name] = group
    return Gazetteer(
        places, tuple(raw["ranks"]), frozenset(raw["non_names"]), tuple(raw["people"]), frozenset(raw["demonyms"])
    )
