"""Timing marks: where ``pispeaker bench`` reads latencies inside the running code.

A component with a ``mark`` attribute calls it right after the moment a mark names, with
what identifies the audio concerned (the callback reads the clock itself, and may be called
from a device thread). The service leaves every ``mark`` None: it costs one test.
"""

from collections.abc import Callable

#: ``mark(point, detail)``; the points are named where they are marked.
Mark = Callable[[str, object], None]
