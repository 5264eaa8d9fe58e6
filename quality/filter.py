"""The filter stage's logic: every text field of a generated record checked, first failure wins.

Structure checks (quality/structure.py) run per record; the language checks of the chosen
mode (quality/language.py) run on every field of a batch in one lingua call. A rejection is
a Rejection(field, check, detail); its check ("structure:empty", "language:German",
"script:Han", "seed:english_confidence", "input:invalid_json") is the drop reason
counted under "dropped" (common/reasons.py) and names the rejects file it lands in.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from lingua import Language

from common.files import JsonlError, JsonlLine
from common.params import ParamsError
from common.reasons import Drops
from quality.language import MEMO_SIZE, DefaultJudge, SeedJudge
from quality.structure import Rejection, structure_rejection, text_fields, text_problem

log = logging.getLogger("filter")
MODES = ("default", "seed")
Judge = DefaultJudge | SeedJudge
# Fields written from our own English templates, typos made on purpose (a Q-PT user turn:
# "whatt happenwd at berlin", which lingua calls German): structure-checked, not language-checked.
OWN_TEMPLATE_FIELDS = {"qpt": ("messages[0].content",)}


@dataclass(frozen=True)
class FilterParams:
    mode: str  # default | seed (the seed project's rule, kept for comparison)
    languages: tuple[str, ...]  # default mode's lingua detector: English + the languages to catch
    min_margin: float  # default: lingua must prefer another language by this much to reject
    masked_min_words: int  # default: words left after masking names before that view counts alone
    english_override: int  # default: a sentence with this many English function words is English
    seed_min_confidence: float  # seed: English confidence a text needs (the seed used 1.0)
    max_chars: int  # runaway length: a longer field is rejected
    batch_size: int  # records per lingua batch
    skip_meta_keys: tuple[str, ...]  # meta keys holding labels, not text (generator, mode, family...)


def check_params(params: FilterParams, where: str) -> None:
    if params.mode not in MODES:
        raise ParamsError(f"{where}:filter.mode: {params.mode!r} is not one of {', '.join(MODES)}")
    for name in params.languages:
        try:
            Language.from_str(name)
        except ValueError:
            raise ParamsError(
                f"{where}:filter.languages: unknown language {name!r} (lingua names: GERMAN, BOKMAL...)"
            ) from None
    if "ENGLISH" not in params.languages:
        raise ParamsError(f"{where}:filter.languages: must include ENGLISH")


def build_judges(params: FilterParams, memo_size: int = MEMO_SIZE) -> dict[str, Judge]:
    """Both modes' judges (the evaluation scores both); lingua detectors are cached per process,
    each judge keeps the verdicts of its last `memo_size` distinct texts (0: none, every text judged as it comes)."""
    return {
        "default": DefaultJudge(
            params.languages, params.min_margin, params.masked_min_words, params.english_override, memo_size
        ),
        "seed": SeedJudge(params.seed_min_confidence, memo_size),
    }


def language_fields(record: dict, fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (path, text) fields of a structurally sound record that the language judge sees:
    all but those written from our own templates (OWN_TEMPLATE_FIELDS)."""
    own = OWN_TEMPLATE_FIELDS.get(record.get("kind"), ())
    return [(path, text) for path, text in fields if path not in own]


def judge_records(
    records: Sequence, judge: Judge, params: FilterParams, parallel: bool = True
) -> list[Rejection | None]:
    """The first failing check of each record (None = keep); one lingua batch for all."""
    results: list[Rejection | None] = [None] * len(records)
    texts, owners = [], []
    # Fields repeat across a batch's records (a question stem, an article sentence as the
    # answer of several prompt types): each distinct text is structure-checked once.
    problem_of = functools.lru_cache(maxsize=None)(text_problem)
    for k, record in enumerate(records):
        fields = text_fields(record, params.skip_meta_keys)
        results[k] = structure_rejection(record, fields, params.max_chars, problem_of)
        if results[k] is None:
            for path, text in language_fields(record, fields):
                texts.append(text)
                owners.append((k, path))
    for (k, path), verdict in zip(owners, judge.judge(texts, parallel=parallel), strict=True):
        if verdict and results[k] is None:  # fields come in order: the first failure wins
            results[k] = Rejection(path, verdict.check, verdict.detail)
    return results


def rejection_tags(rejection: Rejection) -> dict:
    """The fields a rejected record carries in the rejects folder."""
    return {"stage": "filter", "field": rejection.field, "check": rejection.check, "detail": rejection.detail}


def filter_lines(
    lines: Iterable[JsonlLine], judge: Judge, params: FilterParams, rejected: list[dict], drops: Drops
) -> Iterator[dict]:
    """Kept records of a stream of JsonlLine. Rejects (tagged) and unreadable lines go to
    `rejected` and are counted in `drops` by check ("language:German", "input:invalid_json")."""
    batch: list[JsonlLine] = []

    def flush() -> Iterator[dict]:
        records = [line.record for line in batch]
        for line, record, rejection in zip(batch, records, judge_records(records, judge, params), strict=True):
            if rejection is None:
                yield record
                continue
            tags = rejection_tags(rejection)
            rejected.append({**record, **tags} if isinstance(record, dict) else {"record": record, **tags})
            drops.add(rejection.check, f"line={line.lineno} field={rejection.field}")
        batch.clear()

    for line in lines:
        if line.error:
            log.warning("line=%d unreadable reason=%s", line.lineno, line.error)
            check = f"input:{line.error}"
            rejected.append({"stage": "filter", "field": None, "check": check, "detail": f"line {line.lineno}"})
            drops.add(check)
            continue
        batch.append(line)
        if len(batch) >= params.batch_size:
            yield from flush()
    yield from flush()


def evaluate(rows: list[dict], judges: dict[str, Judge]) -> dict:
    """False-reject rate (English rejected) and false-accept rate (contamination kept) per mode."""
    texts = [row["text"] for row in rows]
    report = {}
    for mode, judge in judges.items():
        per_kind: dict[str, Counter] = defaultdict(Counter)
        totals: Counter = Counter()
        wrong_examples = []
        for row, verdict in zip(rows, judge.judge(texts), strict=True):
            english = row["label"] == "en"
            wrong = (verdict is not None) == english  # English rejected, or contamination kept
            side = "english" if english else "contaminated"
            totals[side] += 1
            totals[f"{side}_errors"] += wrong
            per_kind[row["kind"]]["n"] += 1
            per_kind[row["kind"]]["errors"] += wrong
            if wrong:
                wrong_examples.append(f"{row['kind']}:{row['text'][:60]!r}:{verdict.check if verdict else 'kept'}")
        log.info("eval mode=%s wrong=%d examples=%s", mode, len(wrong_examples), wrong_examples[:5])
        log.debug("eval mode=%s all_wrong=%s", mode, wrong_examples)
        report[mode] = {
            "n_english": totals["english"],
            "n_contaminated": totals["contaminated"],
            "false_rejects": totals["english_errors"],
            "false_accepts": totals["contaminated_errors"],
            "false_reject_rate": round(totals["english_errors"] / max(totals["english"], 1), 4),
            "false_accept_rate": round(totals["contaminated_errors"] / max(totals["contaminated"], 1), 4),
            "per_kind": {
                kind: {"n": c["n"], "errors": c["errors"], "error_rate": round(c["errors"] / c["n"], 4)}
                for kind, c in sorted(per_kind.items())
            },
        }
    return report


def check_eval_rows(rows: list, where: str) -> list[dict]:
    """The rows of the labelled evaluation set, each with a kind (defaults to its label)."""
    for n, row in enumerate(rows, start=1):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("text"), str)
            or row.get("label") not in ("en", "contaminated")
        ):
            raise JsonlError(f"{where}: row {n}: needs text, label en|contaminated and kind")
        row.setdefault("kind", row["label"])
    return rows


def rejects_by_file(rejected: list[dict]) -> dict[str, list[dict]]:
    """The rejects folder's files: one per check ("language:German" -> language__German.jsonl)."""
    by_check: dict[str, list[dict]] = defaultdict(list)
    for record in rejected:
        by_check[record["check"]].append(record)
    return {f"{check.replace(':', '__')}.jsonl": records for check, records in sorted(by_check.items())}
