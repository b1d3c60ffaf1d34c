"""One readable file per algorithm, built from the shared losses, nets, envs and buffers.

``TRAINED``: the algorithms the run harness (``semigrad.trainer``) trains, name -> module; the
one registry (``semigrad train --algo NAME``, ``semigrad sweep NAME``, ``load_agent``). Adding
an algorithm is its file here plus its line in ``TRAINED``. Importing this package imports no
algorithm (nor torch).
"""

TRAINED = {
    "dqn": "semigrad.algos.dqn",
    "c51": "semigrad.algos.c51",
    "qrdqn": "semigrad.algos.qrdqn",
    "rainbow": "semigrad.algos.rainbow",
    "pqn": "semigrad.algos.pqn",
    "sarsa": "semigrad.algos.sarsa",
    "td0": "semigrad.algos.td0",
}
