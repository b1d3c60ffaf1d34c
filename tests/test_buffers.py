"""ReplayBuffer: wrap-around, sampling only filled slots, flags kept apart, checkpoints."""

import pytest
import torch

from semigrad.buffers import ReplayBuffer


def _add(buf, start, n):
    ids = torch.arange(start, start + n)
    obs = ids.float().unsqueeze(1).repeat(1, 2)
    buf.add(obs, ids, ids.float(), obs + 0.5, ids % 3 == 0, ids % 3 == 1)


def test_wrap_around_overwrites_oldest():
    buf = ReplayBuffer(5, 2)
    _add(buf, 0, 3)
    _add(buf, 3, 4)  # ids 3,4 fill slots 3,4; ids 5,6 wrap to slots 0,1
    assert len(buf) == 5 and buf.pos == 2
    assert buf.actions.tolist() == [5, 6, 2, 3, 4]
    assert torch.equal(buf.next_obs[:, 0], buf.actions.float() + 0.5)


def test_sampling_only_from_filled_slots():
    buf = ReplayBuffer(100, 2)
    _add(buf, 10, 7)
    batch = buf.sample(2000, torch.Generator().manual_seed(0))
    assert set(batch.actions.tolist()) == set(range(10, 17))  # every filled slot, nothing else


def test_terminated_and_truncated_kept_apart():
    buf = ReplayBuffer(10, 2)
    _add(buf, 0, 9)
    batch = buf.sample(500, torch.Generator().manual_seed(1))
    assert torch.equal(batch.terminated, batch.actions % 3 == 0)
    assert torch.equal(batch.truncated, batch.actions % 3 == 1)
    assert not torch.any(batch.terminated & batch.truncated)


def test_state_dict_round_trip():
    buf = ReplayBuffer(8, 2)
    _add(buf, 0, 6)
    _add(buf, 6, 5)
    other = ReplayBuffer(8, 2)
    other.load_state_dict(buf.state_dict())
    assert (other.pos, other.size) == (buf.pos, buf.size)
    assert torch.equal(other.obs, buf.obs) and torch.equal(other.truncated, buf.truncated)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(buf.sample(16, g1).next_obs, other.sample(16, g2).next_obs)


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, 2).sample(1)
    with pytest.raises(ValueError, match="does not fit"):
        ReplayBuffer(4, 3).load_state_dict(ReplayBuffer(4, 2).state_dict())
