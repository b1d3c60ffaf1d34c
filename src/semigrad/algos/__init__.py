"""One readable file per algorithm, built from the shared losses, nets, envs and buffers."""
