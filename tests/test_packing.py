"""dataset/bin_packing.py (which record goes where) and the pack stage (the arrays on disk)."""

import json

import numpy as np
import pytest
import torch

from dataset.bin_packing import (
    best_fit_decreasing,
    context_cu_seqlens,
    fill_contexts,
    layout_segments,
    n_contexts,
    piece_spans,
    plan_pieces,
)
from model.packing import cu_seqlens_from_positions, record_targets
from stages import pack

ARRAYS = ("tokens", "mask", "positions", "doc_ids", "targets", "target_mask")


def chat_records(lengths, seed=0):
    """ids, mask, offsets in the encode format: a user turn (mask 0) then the answer (mask 1)."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = rng.integers(1, 4000, int(offsets[-1])).astype(np.uint16)
    mask = np.zeros(len(ids), dtype=np.uint8)
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        mask[start + (end - start) // 3 : end] = 1  # the last two thirds are the assistant's
    return ids, mask, offsets


def realistic_lengths(n, seed=0):
    """Token lengths like the default data: short QA/contrastive records (~70 tokens) and
    ~10% QPT records carrying a whole 8-sentence window (~300 tokens, often > 256)."""
    rng = np.random.default_rng(seed)
    qa = np.clip(rng.lognormal(np.log(70), 0.35, n - n // 10), 20, 300)
    qpt = np.clip(rng.normal(300, 40, n // 10), 150, 500)
    return rng.permutation(np.concatenate([qa, qpt]).astype(np.int64))


@pytest.mark.parametrize(
    "length, spans",
    [(10, [(0, 10)]), (16, [(0, 16)]), (17, [(0, 16), (15, 2)]), (31, [(0, 16), (15, 16)]),
     (32, [(0, 16), (15, 16), (30, 2)])],
)  # fmt: skip
def test_long_records_split_into_pieces_that_train_every_target_once(length, spans):
    assert piece_spans(length, 16) == spans
    targets = [t for start, size in spans for t in range(start + 1, start + size)]
    assert targets == list(range(1, length))  # targets 1..L-1, none twice, none lost


def test_best_fit_decreasing_fills_the_fullest_bin_that_fits():
    bins, starts = best_fit_decreasing(np.array([2, 6, 4, 5, 3]), 10)
    # 6 -> bin 0, 5 -> bin 1, 4 -> bin 0 (room 4 fits exactly), 3 -> bin 1, 2 -> bin 1
    assert bins.tolist() == [1, 0, 0, 1, 1] and starts.tolist() == [8, 0, 6, 0, 5]
    with pytest.raises(ValueError, match="within 1..10"):
        best_fit_decreasing(np.array([11]), 10)


@pytest.mark.parametrize("context_length", [256, 1024])
def test_efficiency_is_at_least_098_on_a_realistic_length_distribution(context_length):
    ids, mask, offsets = chat_records(realistic_lengths(5000))
    pieces, _ = plan_pieces(offsets, mask, context_length, "split")
    segments = layout_segments(pieces, context_length, seed=1)
    efficiency = segments[:, 4].sum() / (n_contexts(segments) * context_length)
    assert efficiency >= 0.98
    used = np.bincount(segments[:, 0], weights=segments[:, 4])
    assert used.max() <= context_length


def test_context_cu_seqlens_gives_record_boundaries_without_padding():
    assert context_cu_seqlens(np.array([0, 0, 0, 1, 1, 2, -1, -1])).tolist() == [0, 3, 5, 6]
    assert context_cu_seqlens(np.array([0, 0, 0, 0])).tolist() == [0, 4]
    assert context_cu_seqlens(np.array([-1, -1])).tolist() == [0]


def write_tokens(folder, splits, meta=None):
    folder.mkdir(parents=True, exist_ok=True)
    for split, (ids, mask, offsets) in splits.items():
        for kind, array in (("ids", ids), ("mask", mask), ("offsets", offsets)):
            np.save(folder / f"{split}.{kind}.npy", array)
    (folder / "meta.json").write_text(json.dumps(meta or {}))


def run(tmp_path, params_file, splits, meta=None, **overrides):
    write_tokens(tmp_path / "tokens", splits, meta)
    out = tmp_path / "packed"
    code = pack.main(["--params", str(params_file(**overrides)), "--tokens", str(tmp_path / "tokens"),
                      "--out", str(out), "--metrics", str(tmp_path / "pack.json")])  # fmt: skip
    return code, out


def load(out, split):
    return {name: np.load(out / f"{split}.{name}.npy") for name in (*ARRAYS, "segments")}


# one record of every kind: normal, exactly T, longer than T, length 1, no loss tokens
EDGE_LENGTHS = [40, 64, 150, 1, 30, 20, 5]


def edge_records():
    ids, mask, offsets = chat_records(EDGE_LENGTHS)
    mask[offsets[4] : offsets[5]] = 0  # record 4 never trains anything
    return ids, mask, offsets


def test_every_record_lands_once_with_its_boundaries_positions_and_targets(tmp_path, params_file):
    ids, mask, offsets = edge_records()
    code, out = run(tmp_path, params_file, {"train": (ids, mask, offsets), "val": chat_records([12, 9], 1)},
                    pack__context_length=64)  # fmt: skip
    assert code == 0
    a = load(out, "train")
    assert all(a[name].shape == a["tokens"].shape and a[name].shape[1] == 64 for name in ARRAYS)
    seen = {}
    for context, start, record, record_start, length in a["segments"].tolist():
        seen.setdefault(record, []).append((record_start, length))
        span = slice(start, start + length)
        source = slice(offsets[record] + record_start, offsets[record] + record_start + length)
        assert a["tokens"][context, span].tolist() == ids[source].tolist()
        assert a["mask"][context, span].tolist() == mask[source].tolist()
        assert a["positions"][context, span].tolist() == list(range(length))  # restarts at 0
        assert len(set(a["doc_ids"][context, span].tolist())) == 1
        assert a["target_mask"][context, start + length - 1] == 0  # never the next record's token
        assert a["targets"][context, span][:-1].tolist() == ids[source][1:].tolist()
    # 150 tokens in T=64 -> pieces at 0, 63, 126; record 3 (1 token) and record 4 (no loss) dropped
    assert sorted(seen) == [0, 1, 2, 5, 6] and sorted(seen[2]) == [(0, 64), (63, 64), (126, 24)]
    assert all(seen[r] == [(0, EDGE_LENGTHS[r])] for r in (0, 1, 5, 6))
    used = (a["doc_ids"] >= 0).sum(axis=1)
    assert (a["doc_ids"][np.arange(64)[None, :] >= used[:, None]] == -1).all()  # padding only at the tail
    assert (a["target_mask"][:, :-1] <= a["mask"][:, 1:]).all() and not a["target_mask"][:, -1].any()
    same_next = np.zeros_like(a["target_mask"], dtype=bool)
    same_next[:, :-1] = a["doc_ids"][:, 1:] == a["doc_ids"][:, :-1]
    assert not (a["target_mask"].astype(bool) & ~same_next).any()  # the loss never crosses records
    metrics = json.loads((tmp_path / "pack.json").read_text())["train"]
    assert metrics["dropped"] == {"too_short": 1, "no_loss_tokens": 1, "too_long": 0, "piece_no_loss_tokens": 0}
    assert metrics["records_split"] == 1 and metrics["split_pieces"] == 3 and metrics["records_packed"] == 5
    assert metrics["tokens"] == 40 + 64 + 64 + 64 + 24 + 20 + 5 and metrics["loss_tokens"] == a["target_mask"].sum()
    assert metrics["efficiency"] == round(metrics["tokens"] / (metrics["contexts"] * 64), 5)
    assert json.loads((out / "meta.json").read_text())["contexts"] == {"train": metrics["contexts"], "val": 1}


def test_targets_and_positions_match_the_model_batch_helpers(tmp_path, params_file):
    """The trainer turns positions into cu_seqlens (model/packing.py); the stored targets
    must be exactly what record_targets derives from them."""
    splits = {"train": chat_records(realistic_lengths(300) // 4)}
    _, out = run(tmp_path, params_file, splits, meta={"pad_id": 3}, pack__context_length=128)
    a = load(out, "train")
    real = torch.from_numpy(a["doc_ids"] >= 0)
    assert (a["tokens"][~real.numpy()] == 3).all() and (~real).any()  # the tokenizer's pad id
    positions = torch.from_numpy(a["positions"].astype(np.int64))
    cu_seqlens = cu_seqlens_from_positions(positions)
    targets, loss_mask = record_targets(torch.from_numpy(a["tokens"].astype(np.int64)),
                                        torch.from_numpy(a["mask"]), cu_seqlens)  # fmt: skip
    assert torch.equal(targets[real], torch.from_numpy(a["targets"].astype(np.int64))[real])
    assert torch.equal(loss_mask, torch.from_numpy(a["target_mask"]).bool())
    row = context_cu_seqlens(a["doc_ids"][0])
    assert row.tolist() == cu_seqlens[: len(row)].tolist()  # context 0: same record boundaries


def test_long_records_can_be_dropped_instead(tmp_path, params_file):
    code, out = run(tmp_path, params_file, {"train": edge_records()}, pack__context_length=64,
                    pack__long_records="drop")  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "pack.json").read_text())["train"]
    assert metrics["dropped"]["too_long"] == 1 and metrics["records_split"] == 0
    assert 2 not in load(out, "train")["segments"][:, 2]


def test_fill_in_chunks_equals_fill_at_once():
    ids, mask, offsets = chat_records(realistic_lengths(400))
    pieces, _ = plan_pieces(offsets, mask, 256, "split")
    segments = layout_segments(pieces, 256, seed=3)
    total = n_contexts(segments)
    whole = fill_contexts(segments, ids, mask, offsets, 256, 0, total)
    parts = [fill_contexts(segments, ids, mask, offsets, 256, first, min(7, total - first))
             for first in range(0, total, 7)]  # fmt: skip
    for name in ARRAYS:
        assert np.array_equal(whole[name], np.concatenate([p[name] for p in parts]))


def test_rerun_is_byte_identical_and_the_seed_only_reorders_contexts(tmp_path, params_file):
    splits = {"train": chat_records(realistic_lengths(500)), "val": chat_records([30, 40], 2)}
    _, out = run(tmp_path, params_file, splits)
    first = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    _, out = run(tmp_path, params_file, splits)
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == first
    _, out = run(tmp_path, params_file, splits, pack__seed=5)
    assert (out / "train.tokens.npy").read_bytes() != first["train.tokens.npy"]
    rows = {r.tobytes() for r in load(out, "train")["tokens"]}
    assert rows == {r.tobytes() for r in np.load(tmp_path / "packed" / "train.tokens.npy")}


def corrupt(kind):
    ids, mask, offsets = chat_records([10, 12, 8])
    if kind == "offsets_end":
        offsets = offsets.copy()
        offsets[-1] += 5
    elif kind == "offsets_order":
        offsets = np.array([0, 12, 10, 30])
    elif kind == "mask_values":
        mask = mask * 2
    return ids, mask, offsets


@pytest.mark.parametrize(
    "kind, message",
    [("offsets_end", "arrays disagree"), ("offsets_order", "never decrease"), ("mask_values", "0 or 1")],
)
def test_bad_token_arrays_are_a_clear_error(tmp_path, params_file, caplog, kind, message):
    code, out = run(tmp_path, params_file, {"train": corrupt(kind)})
    assert code == 2 and message in caplog.text and not out.exists()


def test_missing_input_and_unpackable_records_are_clear_errors(tmp_path, params_file, caplog):
    argv = ["--params", str(params_file()), "--tokens", str(tmp_path / "none"), "--out", str(tmp_path / "p"),
            "--metrics", str(tmp_path / "m.json")]  # fmt: skip
    assert pack.main(argv) == 2 and "tokens folder not found" in caplog.text
    code, out = run(tmp_path, params_file, {"val": chat_records([10])})
    assert code == 2 and "no train.offsets.npy" in caplog.text
    np.save(tmp_path / "tokens" / "train.offsets.npy", np.array([0, 10]))  # train without ids and mask
    assert pack.main(argv[:2] + ["--tokens", str(tmp_path / "tokens")] + argv[4:]) == 2
    assert "train.ids.npy: not found" in caplog.text
    code, out = run(tmp_path, params_file, {"train": chat_records([1, 1])})
    assert code == 2 and "no train record can be packed" in caplog.text and not out.exists()
    code, out = run(tmp_path, params_file, {"train": chat_records([10])}, pack__long_records="chop")
    assert code == 2 and "long_records" in caplog.text


def test_every_split_is_packed_alike_including_recall_and_an_empty_one(tmp_path, params_file):
    empty = (np.zeros(0, np.uint16), np.zeros(0, np.uint8), np.zeros(1, np.int64))
    splits = {"train": chat_records([40, 30, 20]), "val": empty, "recall": chat_records([25, 35], 4)}
    code, out = run(tmp_path, params_file, splits, pack__context_length=64)
    assert code == 0
    recall = load(out, "recall")
    assert recall["tokens"].shape == (1, 64) and sorted(recall["segments"][:, 2].tolist()) == [0, 1]
    assert load(out, "val")["tokens"].shape == (0, 64)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["contexts"] == {"recall": 1, "train": 2, "val": 0}
    assert json.loads((tmp_path / "pack.json").read_text())["recall"]["records_packed"] == 2


def test_padded_mode_puts_one_record_in_each_context_and_reports_the_useful_share(tmp_path, params_file):
    code, out = run(tmp_path, params_file, {"train": edge_records()}, pack__context_length=64, pack__mode="padded")
    assert code == 0
    arrays = load(out, "train")
    # 40, 64, 150 -> three pieces (64, 64, 24 with the 1-token overlap), 30 (no loss), 20, 5
    assert len(arrays["tokens"]) == 7 and (arrays["doc_ids"].max(axis=1) == 0).all()
    assert np.bincount(arrays["segments"][:, 0]).tolist() == [1] * 7  # one piece per context
    metrics = json.loads((tmp_path / "pack.json").read_text())
    useful = arrays["segments"][:, 4].sum() / (7 * 64)
    assert metrics["mode"] == "padded" and metrics["train"]["useful_token_share"] == round(useful, 5)
    run(tmp_path, params_file, {"train": edge_records()}, pack__context_length=64)
    assert json.loads((tmp_path / "pack.json").read_text())["train"]["useful_token_share"] > useful


def test_separate_raw_packs_raw_records_into_leading_contexts_of_their_own(tmp_path, params_file):
    ids, mask, offsets = chat_records([30, 20, 25, 40, 35, 10, 12])
    splits = {"train": (ids, mask, offsets), "val": chat_records([12, 9], 1)}
    meta = {"raw_records": [4, 7]}  # the last three records are raw text
    code, out = run(tmp_path, params_file, splits, meta=meta, pack__context_length=64, pack__separate_raw=True)
    assert code == 0
    segments = load(out, "train")["segments"]
    raw_contexts = json.loads((out / "meta.json").read_text())["raw_contexts"]
    assert raw_contexts == json.loads((tmp_path / "pack.json").read_text())["train"]["raw_contexts"] > 0
    in_raw = segments[:, 0] < raw_contexts
    assert set(segments[in_raw, 2].tolist()) == {4, 5, 6} and set(segments[~in_raw, 2].tolist()) == {0, 1, 2, 3}
    code, out = run(tmp_path, params_file, splits, meta=meta, pack__context_length=64)
    assert code == 0 and "raw_contexts" not in json.loads((out / "meta.json").read_text())


@pytest.mark.parametrize(
    ("overrides", "meta", "message"),
    [
        ({"pack__mode": "stacked"}, {}, "pack.mode"),
        ({"pack__separate_raw": True}, {"raw_records": [1, 9]}, "raw_records [1, 9) disagree with 3 train records"),
        ({"pack__separate_raw": True}, {"raw_records": "all"}, "raw_records must be [first, end]"),
    ],
)
def test_bad_mode_and_raw_tags_are_clear_errors(tmp_path, params_file, caplog, overrides, meta, message):
    code, out = run(tmp_path, params_file, {"train": chat_records([10, 12, 14])}, meta=meta, **overrides)
    assert code == 2 and message in caplog.text and not out.exists()
