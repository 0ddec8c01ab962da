"""Energy-based voice activity detection on 16 kHz s16le audio, as the emulated server runs it.

The real service's VAD is a model; the emulator's is a level detector with the same knobs,
so that tests can drive every documented behaviour with synthetic signals:

- ``prefix_padding_ms``: how long speech must last before start-of-speech is committed;
- ``silence_duration_ms``: how long non-speech must last before end-of-speech is committed;
- start sensitivity: HIGH commits on quieter sound than LOW;
- end sensitivity: HIGH ends on a louder tail than LOW (it hears the end sooner).

Speech continues while frames stay above the start threshold minus a hysteresis margin, so
a steady sound near the threshold cannot flap between start and end.
"""

from dataclasses import dataclass, field
from typing import Any, Literal

from pispeaker.audio.pcm import INPUT_RATE, SAMPLE_WIDTH, rms_dbfs

FRAME_MS = 20
FRAME_BYTES = INPUT_RATE * FRAME_MS // 1000 * SAMPLE_WIDTH
#: Level (dBFS) a frame must reach to count as speech onset, by start sensitivity.
START_THRESHOLD_DBFS = {"START_SENSITIVITY_HIGH": -45.0, "START_SENSITIVITY_LOW": -30.0}
#: How far (dB) below the start threshold speech may fall and continue, by end sensitivity.
END_HYSTERESIS_DB = {"END_SENSITIVITY_HIGH": 3.0, "END_SENSITIVITY_LOW": 12.0}


@dataclass(frozen=True)
class VadSettings:
    """The server VAD parameters of ``realtimeInputConfig.automaticActivityDetection``."""

    start_sensitivity: str = "START_SENSITIVITY_HIGH"
    end_sensitivity: str = "END_SENSITIVITY_HIGH"
    prefix_padding_ms: int = 20
    silence_duration_ms: int = 500

    @classmethod
    def from_setup(cls, detection: dict[str, Any], default_silence_ms: int) -> "VadSettings":
        """Read the camelCase ``automaticActivityDetection`` object; absent fields default."""
        return cls(
            start_sensitivity=_known(
                detection.get("startOfSpeechSensitivity"),
                START_THRESHOLD_DBFS,
                cls.start_sensitivity,
            ),
            end_sensitivity=_known(
                detection.get("endOfSpeechSensitivity"), END_HYSTERESIS_DB, cls.end_sensitivity
            ),
            prefix_padding_ms=int(detection.get("prefixPaddingMs", cls.prefix_padding_ms)),
            silence_duration_ms=int(detection.get("silenceDurationMs", default_silence_ms)),
        )


def _known(value: Any, table: dict[str, float], default: str) -> str:
    # UNSPECIFIED (or absent) means the service default.
    return value if value in table else default


@dataclass(frozen=True)
class VadEvent:
    """Start or end of user speech; ``offset_s`` is the position in the audio stream.

    An ``end`` event carries the utterance: the audio from the first speech frame through
    the last one, with the trailing silence trimmed.
    """

    kind: Literal["start", "end"]
    offset_s: float
    audio: bytes = b""


@dataclass
class EnergyVad:
    """Feed audio in chunks of any size; get start/end events at 20 ms frame resolution."""

    settings: VadSettings
    _pending: bytes = b""
    _frames_seen: int = 0
    _onset: list[bytes] = field(default_factory=list)
    _speech: list[bytes] = field(default_factory=list)
    _voiced_frames: int = 0
    _silent_frames: int = 0
    _start_frame: int = 0

    @property
    def in_speech(self) -> bool:
        """True between a committed start and its end."""
        return bool(self._speech)

    @property
    def _end_threshold(self) -> float:
        start = START_THRESHOLD_DBFS[self.settings.start_sensitivity]
        return start - END_HYSTERESIS_DB[self.settings.end_sensitivity]

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Consume audio; return the events it completes, in order."""
        data = self._pending + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        events: list[VadEvent] = []
        for offset in range(0, whole, FRAME_BYTES):
            event = self._frame(data[offset : offset + FRAME_BYTES])
            self._frames_seen += 1
            if event:
                events.append(event)
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream (``audioStreamEnd``): end speech in progress, drop an uncommitted onset."""
        self._onset.clear()
        self._pending = b""  # a partial frame of the stream that ended
        return [self._end()] if self.in_speech else []

    def _frame(self, frame: bytes) -> VadEvent | None:
        level = rms_dbfs(frame)
        if self.in_speech:
            return self._continue(frame, level)
        if level < START_THRESHOLD_DBFS[self.settings.start_sensitivity]:
            self._onset.clear()
            return None
        self._onset.append(frame)
        if len(self._onset) * FRAME_MS < max(self.settings.prefix_padding_ms, FRAME_MS):
            return None
        self._speech, self._onset = self._onset, []
        self._voiced_frames, self._silent_frames = len(self._speech), 0
        self._start_frame = self._frames_seen + 1 - len(self._speech)
        return VadEvent("start", self._start_frame * FRAME_MS / 1000)

    def _continue(self, frame: bytes, level: float) -> VadEvent | None:
        self._speech.append(frame)
        if level >= self._end_threshold:
            self._voiced_frames, self._silent_frames = len(self._speech), 0
            return None
        self._silent_frames += 1
        if self._silent_frames * FRAME_MS < self.settings.silence_duration_ms:
            return None
        return self._end()

    def _end(self) -> VadEvent:
        utterance = b"".join(self._speech[: self._voiced_frames])
        end_frame = self._start_frame + self._voiced_frames
        self._speech, self._voiced_frames, self._silent_frames = [], 0, 0
        return VadEvent("end", end_frame * FRAME_MS / 1000, utterance)
