"""Exponential backoff with jitter and a cap: how long to wait before the next attempt."""

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of ``initial_s * factor**n`` capped at ``cap_s``, each scaled down by up to
    ``jitter`` (a fraction) so that a fleet of speakers does not reconnect in lockstep.

    ``uniform`` is injectable so tests can pin the jitter.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    jitter: float = 0.5
    uniform: Callable[[], float] = field(default=random.random, repr=False)
    attempts: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; counts the attempt."""
        ceiling = min(self.cap_s, self.initial_s * self.factor**self.attempts)
        self.attempts += 1
        return ceiling * (1.0 - self.jitter * self.uniform())

    def reset(self) -> None:
        """A success: start again from ``initial_s``."""
        self.attempts = 0
