"""Derived random seeds: one independent stream per purpose, epoch and sample.

A run's randomness is drawn from streams named by what they are for, such as
``stream_seed(seed, SHUFFLE, epoch)`` for the order of one epoch, never from
whatever state a global generator happens to be in. The same config and data
then give the same run whatever the number of data-loader workers, and a run
resumed from a checkpoint sees exactly what an uninterrupted one saw.

>>> stream_seed(0, SHUFFLE, 1) == stream_seed(0, SHUFFLE, 1)
True
>>> stream_seed(0, SHUFFLE, 1) != stream_seed(0, SHUFFLE, 2)
True
"""

from __future__ import annotations

import random

import numpy as np

#: Purposes, so that streams for different things never coincide.
SHUFFLE = 1
AUGMENT = 2
STEP = 3


def stream_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (the run's seed, a purpose, an epoch, an index).

    Negative or large parts are fine: each is taken modulo 2**64.
    """
    words = [int(p) % (1 << 64) for p in parts]
    state = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def generators(*parts: int) -> tuple[np.random.Generator, random.Random]:
    """A NumPy and a Python generator for the stream named by ``parts``."""
    seed = stream_seed(*parts)
    return np.random.default_rng(seed), random.Random(seed)
