"""Silero VAD v6 as a voice detector: with wake/engine.py, the only module that imports
onnxruntime.

The model ships with pispeaker (models/silero_vad.onnx, MIT; models/README says where it
comes from). At 16 kHz it judges windows of 512 samples (32 ms), each preceded by the last
64 samples of the window before (its context), and carries a recurrent state from window to
window; this module keeps both, as Silero's own OnnxWrapper does.

Not thread-safe: one ``VoiceDetector`` per audio stream, used from one thread.
"""

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from pispeaker.audio.pcm import FULL_SCALE, INPUT_RATE, Floats, to_samples
from pispeaker.errors import VoiceDetectorError

#: The model shipped as package data (pyproject.toml [tool.setuptools.package-data]).
MODEL = Path(__file__).parent / "models" / "silero_vad.onnx"
#: Samples per window the v6 model judges at 16 kHz (32 ms).
WINDOW = 512
#: Samples of the previous window the model sees in front of each window.
CONTEXT = 64
#: The shape of the model's recurrent state: (2, batch, 128).
STATE_SHAPE = (2, 1, 128)
#: What a model-loading error says to do.
_NEXT_STEP = (
    "cannot load the voice detector's Silero VAD v6 model; reinstall pispeaker, which ships "
    "it as pispeaker/audio/models/silero_vad.onnx, or point model_path at that file"
)
#: What onnxruntime raises for a bad model or a failed run: its own exception classes (they
#: derive from Exception only) and the builtins its Python layer raises.
_ORT_ERRORS: tuple[type[Exception], ...] = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NoSuchFile,
    ort_state.NotImplemented,
    ort_state.RuntimeException,
    RuntimeError,
    ValueError,
    OSError,
)


class VoiceDetector:
    """The probability (0-1) that 16 kHz audio holds speech, from Silero VAD v6."""

    def __init__(self, model_path: Path | None = None) -> None:
        """Load ``model_path`` (default: the packaged model); raises VoiceDetectorError when
        it is missing or is not a Silero VAD v6 model."""
        self.model_path = MODEL if model_path is None else model_path
        self._session = _load(self.model_path)
        self._sr = np.array(INPUT_RATE, dtype=np.int64)
        # The model's input, filled in place chunk by chunk (a chunk is shorter than a
        # window: most chunks complete none): the context, then the window so far.
        self._frame: Floats = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)
        self._feeds = {"input": self._frame, "sr": self._sr}
        self._filled = 0  # samples of the window so far
        self._state: Floats  # the model's recurrent state, STATE_SHAPE
        self._last: float  # the probability of the last window judged
        self.reset()

    def probability(self, chunk: bytes) -> float:
        """Feed a 16 kHz mono s16le chunk of any whole-sample length.

        Returns the highest probability among the 512-sample windows this chunk completes,
        or, if it completes none, that of the last window judged (0 before the first).
        """
        samples = to_samples(chunk)
        window = self._frame[0, CONTEXT:]
        judged: float | None = None
        start = 0
        while start < len(samples):
            take = min(WINDOW - self._filled, len(samples) - start)
            # int16 / 32768 is exact in float32: the same samples as to_floats gives
            np.multiply(
                samples[start : start + take],
                1.0 / FULL_SCALE,
                out=window[self._filled : self._filled + take],
                casting="unsafe",
            )
            self._filled += take
            start += take
            if self._filled == WINDOW:
                self._last = self._judge()
                judged = self._last if judged is None else max(judged, self._last)
        return self._last if judged is None else judged

    def reset(self) -> None:
        """Forget the audio heard so far: state, context and the samples short of a window."""
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._frame[:] = 0.0
        self._filled = 0
        self._last = 0.0

    def _judge(self) -> float:
        """Judge the full window; its last CONTEXT samples become the next one's context."""
        self._feeds["state"] = self._state
        try:
            output, self._state = self._session.run(None, self._feeds)
        except _ORT_ERRORS as error:
            raise VoiceDetectorError(f"the voice detector failed: {error}") from error
        self._frame[0, :CONTEXT] = self._frame[0, -CONTEXT:]
        self._filled = 0
        return float(output[0, 0])


def _load(path: Path) -> Any:
    """An onnxruntime session for the model at ``path``: CPU only, one thread (the model is
    small and the Pi's other cores are busy with audio and the network)."""
    if not path.is_file():
        raise VoiceDetectorError(f"{path}: {_NEXT_STEP}: the file does not exist")
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = options.intra_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except _ORT_ERRORS as error:
        raise VoiceDetectorError(f"{path}: {_NEXT_STEP}: {error}") from error
    names = sorted(node.name for node in session.get_inputs())
    if names != ["input", "sr", "state"]:
        raise VoiceDetectorError(f"{path}: {_NEXT_STEP}: its inputs are {names}")
    return session
