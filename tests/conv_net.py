"""A small convolutional Q-network factory for tests (``network="conv_net:conv_q_network"``)."""

from torch import nn


def conv_q_network(obs_dim: int, num_actions: int) -> nn.Module:
    """``(B, obs_dim) -> (B, num_actions)``: the observation as a 1-channel signal, one 1-d
    convolution, then a linear head."""
    return nn.Sequential(nn.Unflatten(1, (1, obs_dim)), nn.Conv1d(1, 8, kernel_size=3,
                                                                   padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(8 * obs_dim, num_actions))
