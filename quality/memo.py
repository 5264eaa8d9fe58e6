"""A bounded memo of verdicts: the filter's judges are pure functions of a text (given their
params), and generated records repeat texts (an article sentence as the answer of many prompt
types, a question stem per type), so each distinct text is judged once and its verdict kept."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

V = TypeVar("V")
_MISSING = object()


class Memo(Generic[V]):
    """The results of the last `size` distinct keys; the least recently used goes first.
    size 0 is no memo: every key is computed as it comes, repeats too (the naive way)."""

    def __init__(self, size: int):
        if size < 0:
            raise ValueError(f"memo size must be >= 0, got {size}")
        self.size = size
        self._results: OrderedDict[Hashable, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._results)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._results

    def each_once(self, keys: Sequence[Hashable], compute: Callable[[list], list[V]]) -> list[V]:
        """compute(keys) in input order, calling `compute` once on the distinct keys not known."""
        if self.size == 0:
            return compute(list(keys))
        known: dict[Hashable, V] = {}
        todo = []
        for key in dict.fromkeys(keys):
            found = self._results.get(key, _MISSING)
            if found is _MISSING:
                todo.append(key)
            else:
                self._results.move_to_end(key)
                known[key] = found
        for key, result in zip(todo, compute(todo) if todo else [], strict=True):
            known[key] = result
            self._put(key, result)
        return [known[key] for key in keys]

    def _put(self, key: Hashable, result: V) -> None:
        self._results[key] = result
        if len(self._results) > self.size:
            self._results.popitem(last=False)
