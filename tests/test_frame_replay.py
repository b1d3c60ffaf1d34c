"""The frame replay stores each frame once and rebuilds stacks; checked against a naive
replay that stores every obs and next_obs stack, through episode ends of both kinds, ring
wrap-around, n-step returns, many agents and a checkpoint round trip."""

import pytest
import torch

from semigrad.buffers import AgentReplay, FrameStackReplay

S, H, W = 4, 3, 2


class FrameStackEnvs:
    """N envs whose frames are unique numbers, stacked as frame-stack wrappers stack them (a
    new episode's stack is its first frame repeated); episodes end at random, terminated or
    truncated."""

    def __init__(self, n, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.n, self.counter, self.episodes = n, 0, 0
        self.episode_of = [0] * n
        self.stacks = torch.stack([self._first(i) for i in range(n)])

    def _frame(self, env):
        """A unique frame: its number in bytes 0-2, its episode's number in bytes 3-5."""
        self.counter += 1
        return torch.tensor([(v >> (8 * b)) & 255 for v in (self.counter, self.episode_of[env])
                             for b in range(3)], dtype=torch.uint8)

    def _first(self, env):
        self.episodes += 1
        self.episode_of[env] = self.episodes
        return self._frame(env).repeat(S)

    def step(self):
        u = torch.rand(self.n, generator=self.gen)
        terminated, truncated = u < 0.08, (u >= 0.08) & (u < 0.14)
        final = torch.stack([torch.cat([s[H * W:], self._frame(i)])
                             for i, s in enumerate(self.stacks)])
        nxt = final.clone()
        for i in torch.nonzero(terminated | truncated).flatten().tolist():
            nxt[i] = self._first(i)
        rewards = torch.randn(self.n, generator=self.gen)
        actions = torch.randint(4, (self.n,), generator=self.gen)
        obs, self.stacks = self.stacks, nxt
        return obs, actions, rewards, final, terminated, truncated


def _fill(replay, envs, steps):
    naive = []
    for _ in range(steps):
        t = envs.step()
        replay.add(*t)
        naive.append(t)
    return naive


def _naive(naive, num_envs, slot, capacity):
    """The transition the ring holds at ``slot``, from the naive list (the newest ones win)."""
    total = len(naive) * num_envs
    base = (total - 1) // capacity * capacity + slot
    if base >= total:
        base -= capacity
    step, env = divmod(base, num_envs)
    return step, env


@pytest.mark.parametrize(("capacity", "num_envs", "steps"), [(60, 3, 15), (60, 3, 47),
                                                             (24, 1, 100)])
def test_rebuilt_stacks_equal_the_naive_replay(capacity, num_envs, steps):
    replay = FrameStackReplay(capacity, (S, H, W), num_envs=num_envs, max_episode_steps=5)
    naive = _fill(replay, FrameStackEnvs(num_envs, seed=steps), steps)
    filled = min(steps * num_envs, capacity)
    newest = {(replay.pos - 1 - i) % capacity for i in range(num_envs)}
    oldest = {(replay.pos + i) % capacity for i in range((S - 1) * num_envs)} \
        if filled == capacity else set()  # their older frames were overwritten
    slots = [j for j in range(filled) if j not in newest | oldest]
    batch = replay.at(torch.tensor(slots))
    for row, j in enumerate(slots):
        step, env = _naive(naive, num_envs, j, capacity)
        obs, actions, rewards, final, terminated, truncated = (x[env] for x in naive[step])
        assert torch.equal(batch.obs[row], obs)
        assert batch.actions[row] == actions and batch.rewards[row] == rewards
        assert batch.terminated[row] == terminated and batch.truncated[row] == truncated
        if not terminated:  # what a target bootstraps from: the true next observation
            assert torch.equal(batch.next_obs[row], final), (j, bool(truncated))


def test_n_step_transitions_equal_a_walk_over_the_naive_replay():
    capacity, num_envs, n, gamma = 90, 3, 3, 0.9
    replay = FrameStackReplay(capacity, (S, H, W), num_envs=num_envs, max_episode_steps=6)
    naive = _fill(replay, FrameStackEnvs(num_envs, seed=5), 50)
    start = torch.arange(capacity)
    valid = [j for j in start.tolist()  # history, the n steps and the successor are stored
             if (j - replay.pos) % capacity >= (S - 1) * num_envs
             and (j + (n - 1) * num_envs - replay.pos) % capacity < capacity - num_envs
             and (j - replay.pos) % capacity < capacity - n * num_envs]
    batch = replay.n_step_at(torch.tensor(valid), n, gamma)
    for row, j in enumerate(valid):
        step, env = _naive(naive, num_envs, j, capacity)
        g, m = 0.0, 0
        while m < n:
            _, _, r, final, te, tr = (x[env] for x in naive[step + m])
            g += gamma ** m * float(r)
            m += 1
            if te or tr:
                break
        assert batch.rewards[row].item() == pytest.approx(g, rel=1e-5)
        assert batch.discounts[row].item() == pytest.approx(gamma ** m)
        assert bool(batch.terminated[row]) == bool(te)
        if not te:
            assert torch.equal(batch.next_obs[row], final)


def test_many_agents_resume_and_memory():
    agents, num_envs, capacity = 2, 2, 40
    replay = AgentReplay(agents, capacity, num_envs, S * H * W, torch.device("cpu"),
                         frames=(S, H, W), max_episode_steps=5)
    envs = FrameStackEnvs(agents * num_envs, seed=1)
    _fill(replay, envs, 30)
    u = torch.rand(agents, 16, generator=torch.Generator().manual_seed(0))
    batch = replay.sample_n_step(3, 0.9, u)
    copy = AgentReplay(agents, capacity, num_envs, S * H * W, torch.device("cpu"),
                       frames=(S, H, W), max_episode_steps=5)
    copy.buffer.load_state_dict(replay.buffer.state_dict())
    again = copy.sample_n_step(3, 0.9, u)
    for a, b in zip(batch.__dict__.values(), again.__dict__.values(), strict=True):
        assert torch.equal(a, b)
    state = replay.buffer.state_dict()
    assert state["frames"].numel() <= replay.buffer.frames.numel()  # frames once
    # one million Atari transitions (84x84 frames, stacks of 4, 27,000-step episodes)
    big = FrameStackReplay(1_000_000, (4, 84, 84), max_episode_steps=27_000)
    assert big.nbytes() <= 7.5e9 and big.nbytes() < 2 * 4 * 84 * 84 * 1_000_000 / 7


def test_every_sampled_transition_is_a_true_frame_stack_step():
    """Sampling (per agent, after the ring wrapped) never returns a slot whose history or
    successor is missing: a next stack is the stack shifted by one frame, plus a new one."""
    agents, num_envs, capacity = 2, 3, 48
    replay = AgentReplay(agents, capacity, num_envs, S * H * W, torch.device("cpu"),
                         frames=(S, H, W), max_episode_steps=5)
    _fill(replay, FrameStackEnvs(agents * num_envs, seed=3), 40)  # wrapped more than twice
    u = torch.linspace(0, 1 - 1e-9, 400).repeat(agents, 1)
    for batch in (replay.sample(u), replay.sample_n_step(1, 0.9, u)):
        live = ~batch.terminated
        obs = batch.obs[live].view(-1, S, H * W)
        nxt = batch.next_obs[live].view(-1, S, H * W)
        assert torch.equal(nxt[:, :-1], obs[:, 1:])
        assert not torch.equal(nxt[:, -1], obs[:, -1])  # a new frame
        number = obs[:, :, :3].long()
        number = number[..., 0] + 256 * number[..., 1] + 65536 * number[..., 2]
        episode = obs[:, :, 3:].long()
        episode = episode[..., 0] + 256 * episode[..., 1] + 65536 * episode[..., 2]
        assert (episode == episode[:, -1:]).all()  # one episode per stack, padded at its start
        assert (number.diff(dim=1) >= 0).all()  # oldest frame first
