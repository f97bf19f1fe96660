"""Known answers of the concealment audits' pure functions: int8 / NF4 fake quantisers and the UDS formula."""

from __future__ import annotations

import pytest
import torch

from expunge.metrics.functional.llm_audit import NF4_LEVELS, int8_rtn, nf4_blockwise, uds_score


def test_int8_rtn_per_output_channel():
    w = torch.tensor([[1.0, -0.5, 0.25], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    q = int8_rtn(w, channel_dim=0)
    s = 1.0 / 127
    assert q[0].tolist() == pytest.approx([1.0, -64 * s, 32 * s])  # 63.5 → 64 (half to even), 31.75 → 32
    assert q[1].tolist() == pytest.approx([0.3, 0.0, 0.0])
    assert q[2].tolist() == [0.0, 0.0, 0.0]  # an all-zero channel stays zero (no division by 0)
    assert torch.equal(int8_rtn(w.T.contiguous(), channel_dim=1), q.T)  # Conv1D layout: channels on axis 1
    g = torch.Generator().manual_seed(0)
    big = torch.randn(16, 64, generator=g)
    err = (int8_rtn(big) - big).abs()
    assert (err <= big.abs().amax(dim=1, keepdim=True) / 127 / 2 + 1e-7).all()
    assert torch.equal(int8_rtn(int8_rtn(big)), int8_rtn(big))  # idempotent


def test_nf4_blocks_of_64_map_to_the_nearest_level():
    levels = torch.tensor(NF4_LEVELS)
    assert len(NF4_LEVELS) == 16 and NF4_LEVELS[0] == -1.0 and NF4_LEVELS[7] == 0.0 and NF4_LEVELS[-1] == 1.0
    w = torch.zeros(128)
    w[0], w[1], w[2] = 2.0, 1.0, -2.0 * 0.6961928009986877  # block 1: absmax 2
    w[64], w[65] = 0.1, 0.05  # block 2: absmax 0.1, 0.5 → nearest level 0.4407 (0.0593 away, 0.5626 is 0.0626)
    q = nf4_blockwise(w.reshape(2, 64))
    assert q.shape == (2, 64)
    flat = q.reshape(-1)
    assert flat[0] == 2.0 and flat[2] == pytest.approx(-2.0 * 0.6961928009986877)
    assert flat[1] == pytest.approx(2.0 * 0.44070982933044434)
    assert flat[64] == pytest.approx(0.1) and flat[65] == pytest.approx(0.1 * 0.44070982933044434)
    g = torch.Generator().manual_seed(1)
    r = torch.randn(3, 100, generator=g)  # 300 values: the last block is padded
    qr = nf4_blockwise(r).reshape(-1)
    flat_r = r.reshape(-1)
    for start in range(0, 300, 64):
        blk, qb = flat_r[start:start + 64], qr[start:start + 64]
        scale = blk.abs().max()
        assert torch.isclose(qb.unsqueeze(1), levels * scale, atol=1e-6).any(dim=1).all()


def test_uds_known_answers():
    assert uds_score([1.0, 0.5], [1.0, 0.5]) == 1.0  # the retain oracle itself
    assert uds_score([1.0, 0.5], [0.0, 0.0]) == 0.0  # the original itself
    assert uds_score([1.0, 0.5, 0.01], [0.5, 1.0, 0.3]) == pytest.approx(2 / 3)  # layer 3 is not KE; 1.0/0.5 clipped
    assert uds_score([1.0], [-0.3]) == 0.0  # a patch that helps counts as intact (clip at 0)
    assert uds_score([0.05, 0.01], [1.0, 1.0]) is None  # no layer with d1 > tau
    with pytest.raises(ValueError, match="one value per layer"):
        uds_score([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        uds_score([1.0], [float("nan")])
