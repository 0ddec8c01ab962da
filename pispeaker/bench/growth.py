"""What a long run leaves behind in the bench process: resident memory, and the asyncio tasks,
threads and file descriptors it holds beyond those it had after warm-up.

Memory growth is the median rate over the tenths of a run, not the difference between its
start and its end. Nothing of pispeaker's grows per conversation (tracemalloc, the objects
the garbage collector tracks, Python's allocated blocks and malloc's bytes in use are all
flat over hundreds of conversations, faults included); what the process holds beyond that
is memory freed after a conversation's peak that glibc's malloc keeps for reuse (about 4 MB
here: ``malloc_trim(0)`` gives it back, and the next conversations take it again). Its
high-water mark steps up when a burst exceeds every one before it (the wake-word thread
falling behind at 8x real time on a loaded machine, reconnects whose TLS and compression
buffers overlap): 0.3 to 6 MB at random moments of a run. Divided by the conversations of
the run, such a step read as "growth per 1000" (the 3.08 MB once reported; 10 MB in a
1000-conversation soak whose step fell in its second half). A leak grows in every tenth; a
step lands in one, and shows in the resident memory after the run and in the total.
"""

import asyncio
import gc
import itertools
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

from pispeaker.bench.service import rss_mb

#: How often the holdings are looked at while they settle (s).
POLL_S = 0.05
#: How long the holdings must stay the same to count as settled (s).
STEADY_S = 0.5


@dataclass(frozen=True)
class Holdings:
    """What this process holds at one moment: asyncio tasks (of the running loop), Python
    threads and open file descriptors."""

    tasks: int
    threads: int
    fds: int

    @classmethod
    def now(cls) -> "Holdings":
        """The holdings of this process now (call it on the event loop)."""
        return cls(
            len(asyncio.all_tasks()),
            threading.active_count(),
            len(os.listdir("/proc/self/fd")),
        )

    def beyond(self, base: "Holdings") -> "Holdings":
        """What this holds beyond ``base``, kind by kind (never below 0)."""
        return Holdings(
            max(0, self.tasks - base.tasks),
            max(0, self.threads - base.threads),
            max(0, self.fds - base.fds),
        )

    @property
    def total(self) -> int:
        """Tasks, threads and file descriptors together."""
        return self.tasks + self.threads + self.fds


#: Nothing held.
NOTHING = Holdings(0, 0, 0)


async def settled(within_s: float, base: Holdings | None = None) -> Holdings:
    """The holdings once what finishes in the background has finished (a link closes its
    last socket after the conversation ended; the emulator's side of it ends after that):
    as soon as they are no more than ``base``, or else once they stayed the same for
    STEADY_S; at the latest after ``within_s``, as they are then."""
    deadline = time.monotonic() + within_s
    last, since = Holdings.now(), time.monotonic()
    while time.monotonic() < deadline:
        if base is not None and last.beyond(base).total == 0:
            return last
        if base is None and time.monotonic() - since >= STEADY_S:
            return last
        await asyncio.sleep(POLL_S)
        current = Holdings.now()
        if current != last:
            last, since = current, time.monotonic()
    return last


@dataclass
class MemoryTrace:
    """Resident memory of this process, each sample after a full garbage collection, as
    (conversations done, MB)."""

    samples: list[tuple[int, float]] = field(default_factory=list)

    def sample(self, done: int) -> None:
        """Take a sample after ``done`` conversations."""
        gc.collect()
        self.samples.append((done, rss_mb()))

    @property
    def last_mb(self) -> float | None:
        """The latest sample (MB); None before the first."""
        return self.samples[-1][1] if self.samples else None

    @property
    def total_mb(self) -> float | None:
        """From the first sample to the last (MB); None without two samples."""
        return self.samples[-1][1] - self.samples[0][1] if len(self.samples) > 1 else None

    def per_1000(self) -> float | None:
        """The median growth per 1000 conversations between consecutive samples (MB); None
        without two samples."""
        rates = [
            (mb - before_mb) / (done - before) * 1000
            for (before, before_mb), (done, mb) in itertools.pairwise(self.samples)
            if done > before
        ]
        return statistics.median(rates) if rates else None
