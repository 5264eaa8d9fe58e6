"""Packed-batch tensors: boundaries, positions, and targets that never cross a record."""

from __future__ import annotations

import pytest
import torch

from model.packing import (
    cu_seqlens_from_lengths,
    cu_seqlens_from_positions,
    pack_rows,
    positions_from_cu_seqlens,
    record_targets,
)


def test_targets_stay_inside_their_record():
    idx = torch.tensor([[10, 11, 12, 20, 21, 30]])
    token_mask = torch.tensor([[0, 1, 1, 1, 1, 1]])
    targets, loss_mask = record_targets(idx, token_mask, cu_seqlens_from_lengths([3, 2, 1]))
    assert targets.tolist() == [[11, 12, 0, 21, 0, 0]]
    # position t learns token t+1 when that token is masked in; a record's last position never does
    assert loss_mask.tolist() == [[True, True, False, True, False, False]]


def test_pack_rows_lays_out_records_and_pads_each_row():
    rows = [[([1, 2, 3], [0, 1, 1]), ([4, 5], [1, 1])], [([6, 7, 8, 9, 10, 11], [1] * 6)]]
    batch = pack_rows(rows, context_length=6, pad_id=0)
    assert batch.idx.tolist() == [[1, 2, 3, 4, 5, 0], [6, 7, 8, 9, 10, 11]]
    assert batch.positions.tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5]]
    assert batch.cu_seqlens.tolist() == [0, 3, 5, 6, 12] and batch.cu_seqlens.dtype == torch.int32
    assert batch.targets[0].tolist() == [2, 3, 0, 5, 0, 0]
    assert batch.loss_mask[0].tolist() == [True, True, False, True, False, False]
    assert batch.loss_mask[1].tolist() == [True] * 5 + [False]


def test_positions_and_cu_seqlens_round_trip():
    cu = cu_seqlens_from_lengths([4, 1, 3, 8])
    positions = positions_from_cu_seqlens(cu, 16)
    assert positions.tolist() == [0, 1, 2, 3, 0, 0, 1, 2, *range(8)]
    assert torch.equal(cu_seqlens_from_positions(positions.view(2, 8)), cu)


@pytest.mark.parametrize(
    ("rows", "message"),
    [([[([1] * 5, [1] * 5)]], "more than context_length"), ([[([1, 2], [1])]], "as many mask values")],
    ids=["overflow", "mask-length"],
)
def test_bad_rows_are_refused(rows, message):
    with pytest.raises(ValueError, match=message):
        pack_rows(rows, context_length=4)


def test_positions_must_open_a_record():
    with pytest.raises(ValueError, match="start at 0"):
        cu_seqlens_from_positions(torch.tensor([[1, 2, 0]]))
