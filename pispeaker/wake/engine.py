"""openWakeWord's models as a ``Scorer``: the ONLY module that imports tflite_runtime (and
onnxruntime for custom .onnx wake-word models).

openWakeWord scores audio in three stages, each a model file: a mel spectrogram of the audio,
Google's speech embedding of the last 76 mel frames, and a small wake-word model over the
last embeddings. This module runs those same files on TensorFlow Lite itself, one pass of
each per 80 ms frame into preallocated buffers, instead of through the ``openwakeword``
package. Why: importing that package imports its training and download code (scikit-learn,
scipy, requests, tqdm: 80 MB and 0.5 s here) that is never used at run time, and its
streaming front end rebuilds a list of its last 10 s of samples for every frame (half its
CPU time). tests/test_wake_engine.py holds this module to openWakeWord 0.6.0's own scores
on the same audio and to the model shapes it relies on, so a release that changes the front
end fails there.

Nothing is downloaded: the files come from the installed model package (catalog.py).
"""

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import tflite_runtime.interpreter as tflite

from pispeaker.errors import ConfigError
from pispeaker.wake.catalog import ModelFile, builtin_names, feature_model
from pispeaker.wake.detector import FRAME_SAMPLES, Samples

log = logging.getLogger(__name__)

#: Samples the mel spectrogram sees per frame: the frame and the 480 before it (its 25 ms
#: windows at a 10 ms hop give 8 mel frames per 80 ms).
MEL_INPUT = FRAME_SAMPLES + 480
#: Mel frames per speech embedding, and mel bands per frame.
MEL_FRAMES, MEL_BANDS = 76, 32
#: Values per speech embedding.
EMBEDDING = 96
#: What loading a bad model file raises inside tflite-runtime and onnxruntime.
_LOAD_ERRORS = (ValueError, RuntimeError, OSError)
#: What TensorFlow Lite writes on stderr when it applies its (fast) XNNPACK delegate.
_DELEGATE_NOTICE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"

Floats = npt.NDArray[np.float32]


class _Head(Protocol):
    """A wake-word model: a score (0-1) from the last ``window`` embeddings."""

    name: str
    window: int

    def score(self, embeddings: Floats) -> float:
        """The score for ``embeddings``, shaped (1, window, EMBEDDING)."""


class OpenWakeWordScorer:
    """Scores 80 ms frames with openWakeWord's models. Not thread-safe: use it from one
    thread."""

    def __init__(self, models: list[ModelFile]) -> None:
        if not models:
            raise ValueError("no wake-word models given")
        self.names = tuple(model.name for model in models)
        try:
            with _quiet_stderr():
                self._front = _FrontEnd()
                heads = [_load_head(model) for model in models]
        except _LOAD_ERRORS as error:
            raise _bad_model(models, error) from error
        self._heads: list[_Head] = heads
        window = max(head.window for head in heads)
        self._embeddings = np.empty((1, window, EMBEDDING), dtype=np.float32)
        self.reset()

    def score(self, frame: Samples) -> dict[str, float]:
        """Each model's score (0-1) after ``frame`` (FRAME_SAMPLES samples of 16 kHz audio)."""
        embeddings = self._embeddings
        embeddings[0, :-1] = embeddings[0, 1:]
        embeddings[0, -1] = self._front.embed(frame)
        return {head.name: head.score(embeddings[:, -head.window :]) for head in self._heads}

    def reset(self) -> None:
        """Forget the audio heard so far: the models start as after silence."""
        self._front.reset()
        self._embeddings[0, :] = self._front.resting


class _FrontEnd:
    """openWakeWord's front end: audio -> mel spectrogram -> one speech embedding per frame."""

    def __init__(self) -> None:
        self._mel = _interpreter(feature_model("melspectrogram"), [1, MEL_INPUT])
        self._embedding = _interpreter(feature_model("embedding_model"))
        self._audio = np.zeros((1, MEL_INPUT), dtype=np.float32)
        self._mels = np.empty((1, MEL_FRAMES, MEL_BANDS, 1), dtype=np.float32)
        self.reset()
        # openWakeWord starts its mel buffer at 1.0: the embedding of that is "nothing heard"
        self.resting = self._embedding.run(self._mels).reshape(EMBEDDING).copy()

    def reset(self) -> None:
        self._audio.fill(0.0)
        self._mels.fill(1.0)

    def embed(self, frame: Samples) -> Floats:
        """The speech embedding after ``frame``: a new one every 80 ms."""
        audio, mels = self._audio, self._mels
        audio[0, :-FRAME_SAMPLES] = audio[0, FRAME_SAMPLES:]
        audio[0, -FRAME_SAMPLES:] = frame
        spectrum = self._mel.run(audio)[0, 0]  # (8, MEL_BANDS)
        new = len(spectrum)
        mels[0, :-new] = mels[0, new:]
        # openWakeWord's scaling, which brings its mel model close to Google's embedding input
        latest = mels[0, -new:, :, 0]
        np.divide(spectrum, 10, out=latest)
        latest += 2
        return self._embedding.run(mels).reshape(EMBEDDING)


@dataclass
class _Interpreter:
    """A TensorFlow Lite model with one input and one output."""

    interpreter: Any
    input_index: int
    output_index: int

    def run(self, data: Floats) -> Floats:
        self.interpreter.set_tensor(self.input_index, data)
        self.interpreter.invoke()
        output: Floats = self.interpreter.get_tensor(self.output_index)
        return output


def _interpreter(path: Any, shape: list[int] | None = None) -> _Interpreter:
    interpreter = tflite.Interpreter(model_path=str(path), num_threads=1)
    if shape is not None:
        interpreter.resize_tensor_input(0, shape, strict=True)
    interpreter.allocate_tensors()
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    return _Interpreter(interpreter, inputs[0]["index"], outputs[0]["index"])


class _TfliteHead:
    """A .tflite wake-word model."""

    def __init__(self, model: ModelFile) -> None:
        self.name = model.name
        self._model = _interpreter(model.path)
        details = self._model.interpreter
        self.window = int(details.get_input_details()[0]["shape"][1])
        _check_outputs(int(details.get_output_details()[0]["shape"][-1]))

    def score(self, embeddings: Floats) -> float:
        return float(self._model.run(embeddings).reshape(-1)[0])


class _OnnxHead:
    """A custom .onnx wake-word model, on the same embeddings."""

    def __init__(self, model: ModelFile) -> None:
        import onnxruntime  # only for custom .onnx models

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = options.intra_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs, outputs = self._session.get_inputs()[0], self._session.get_outputs()[0]
        _check_outputs(outputs.shape[-1])
        self.name, self.window, self._input = model.name, int(inputs.shape[1]), inputs.name

    def score(self, embeddings: Floats) -> float:
        return float(self._session.run(None, {self._input: embeddings})[0].reshape(-1)[0])


def _check_outputs(count: int) -> None:
    if count != 1:
        raise ValueError(f"it has {count} outputs; a wake-word model has one")


def _load_head(model: ModelFile) -> _Head:
    return _OnnxHead(model) if model.path.suffix == ".onnx" else _TfliteHead(model)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Keep TensorFlow Lite's notice that it uses XNNPACK off the terminal (it writes it to
    file descriptor 2, below Python's logging); anything else written meanwhile is passed
    on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            rest = caught.read().replace(_DELEGATE_NOTICE, b"")
            if rest:
                os.write(2, rest)


def _bad_model(models: list[ModelFile], error: Exception) -> ConfigError:
    """A ConfigError naming the model that failed to load (tried one by one) and the
    wake words there are."""
    culprit = next((model for model in models if _fails(model)), None)
    which = f"{culprit.name!r} ({culprit.path})" if culprit else "the wake-word models"
    return ConfigError(
        "wake.models",
        [
            f"wake.models: cannot load {which}: {error}. It must be an openWakeWord "
            f".tflite or .onnx model; built-in wake words: {', '.join(builtin_names())}"
        ],
    )


def _fails(model: ModelFile) -> bool:
    try:
        with _quiet_stderr():
            _load_head(model)
    except _LOAD_ERRORS:
        return True
    return False


def load_scorer(models: list[ModelFile]) -> OpenWakeWordScorer:
    """The scorer for ``models``, logging what was loaded."""
    scorer = OpenWakeWordScorer(models)
    log.info("wake words: %s", ", ".join(f"{m.name} ({m.path.name})" for m in models))
    return scorer
