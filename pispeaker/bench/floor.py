"""The floors pispeaker is measured against, taken in a fresh process (``python -m
pispeaker.bench.floor SECONDS`` prints them as JSON):

* ``rss_mb``: resident memory with every library the service uses by default imported, one
  wake-word model and the voice detector's model loaded, before anything runs;
* ``wake_cpu``: openWakeWord's own CPU seconds per second of audio, scoring SECONDS of room
  noise in 80 ms frames as they would arrive: in real time (cold caches between frames cost
  more than a tight loop shows, and the service pays that too).
"""

import json
import sys
import time

import numpy as np

from pispeaker.audio.pcm import INPUT_RATE
from pispeaker.bench.rig import NOISE_RMS
from pispeaker.bench.service import rss_mb
from pispeaker.bench.speech import WAKE_MODEL

#: Samples per openWakeWord frame (80 ms).
FRAME = 1280


def measure(seconds: float) -> dict[str, float]:
    """Import and load what the service does, then score ``seconds`` of audio."""
    import pispeaker.app
    import pispeaker.audio.alsa
    import pispeaker.audio.echo
    import pispeaker.live.genai
    import pispeaker.live.link
    import pispeaker.service.daemon  # noqa: F401 - imported for its memory
    from pispeaker.audio.voice import VoiceDetector
    from pispeaker.service.memory import give_back_free_memory
    from pispeaker.wake.catalog import resolve
    from pispeaker.wake.engine import load_scorer

    scorer = load_scorer(resolve([WAKE_MODEL]))
    voice = VoiceDetector()
    give_back_free_memory()  # as the service does before it says READY
    resident = rss_mb()
    del voice
    noise = np.random.default_rng(3).normal(0.0, NOISE_RMS, round(seconds * INPUT_RATE))
    frames = np.round(noise).astype(np.int16)[: len(noise) // FRAME * FRAME].reshape(-1, FRAME)
    for frame in frames[:10]:  # the first frames fill the feature buffers
        scorer.score(frame)
    started, due = time.process_time(), time.monotonic()
    for frame in frames:
        scorer.score(frame)
        due += FRAME / INPUT_RATE
        time.sleep(max(0.0, due - time.monotonic()))
    used = time.process_time() - started
    return {"rss_mb": resident, "wake_cpu": used / (len(frames) * FRAME / INPUT_RATE)}


if __name__ == "__main__":
    print(json.dumps(measure(float(sys.argv[1]))))
