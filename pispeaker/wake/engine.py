"""openWakeWord as a ``Scorer``: the ONLY module that imports openwakeword (and the
onnxruntime it brings, for custom .onnx models).

Every model runs on openWakeWord's shared TensorFlow Lite front end (mel spectrogram and
speech embedding, from the installed model package), so nothing is downloaded. A custom
.onnx model scores the same embeddings; openWakeWord 0.6.0 would want ONNX front-end
models for it, which no package ships, so it is attached beside the .tflite ones.
"""

import logging
from collections.abc import Callable
from typing import Any

from pispeaker.errors import ConfigError
from pispeaker.wake.catalog import ModelFile, builtin_names, feature_model, models_dir
from pispeaker.wake.detector import Samples

log = logging.getLogger(__name__)

#: What loading a bad model file raises inside tflite-runtime and onnxruntime.
_LOAD_ERRORS = (ValueError, RuntimeError, OSError)


class OpenWakeWordScorer:
    """Scores 80 ms frames with openWakeWord. Not thread-safe: use it from one thread."""

    def __init__(self, models: list[ModelFile]) -> None:
        if not models:
            raise ValueError("no wake-word models given")
        self.names = tuple(model.name for model in models)
        self._model = _load(models)

    def score(self, frame: Samples) -> dict[str, float]:
        """Each model's score (0-1) after ``frame`` (1280 samples of 16 kHz audio)."""
        scores = self._model.predict(frame)
        return {name: float(scores[name]) for name in self.names}

    def reset(self) -> None:
        """Forget the audio heard so far (feature buffers and score history)."""
        self._model.reset()


def _load(models: list[ModelFile]) -> Any:
    try:
        return _build(models)
    except _LOAD_ERRORS as error:
        raise _bad_model(models, error) from error


def _build(models: list[ModelFile]) -> Any:
    from openwakeword.model import Model

    tflite = [str(model.path) for model in models if model.path.suffix == ".tflite"]
    # openWakeWord loads every pre-trained model (files it would download) when given
    # none: give it a built-in one to hold the front end, and take it out again.
    engine = Model(
        wakeword_models=tflite or [str(models_dir() / "hey_jarvis.tflite")],
        inference_framework="tflite",
        melspec_model_path=str(feature_model("melspectrogram")),
        embedding_model_path=str(feature_model("embedding_model")),
    )
    if not tflite:
        _detach(engine, "hey_jarvis")
    for model in models:
        if model.path.suffix == ".onnx":
            _attach_onnx(engine, model)
    return engine


def _detach(engine: Any, name: str) -> None:
    for table in (engine.models, engine.model_inputs, engine.model_outputs):
        del table[name]
    del engine.model_prediction_function[name], engine.class_mapping[name]


def _attach_onnx(engine: Any, model: ModelFile) -> None:
    """Add a custom .onnx model to ``engine`` as openWakeWord itself would register it."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(model.path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    inputs, outputs = session.get_inputs()[0], session.get_outputs()[0]
    if outputs.shape[1] != 1:
        raise ValueError(f"it has {outputs.shape[1]} outputs; a wake-word model has one")
    engine.models[model.name] = session
    engine.model_inputs[model.name] = inputs.shape[1]
    engine.model_outputs[model.name] = outputs.shape[1]
    engine.model_prediction_function[model.name] = _onnx_predict(session, inputs.name)
    engine.class_mapping[model.name] = {"0": model.name}


def _onnx_predict(session: Any, input_name: str) -> Callable[[Any], Any]:
    return lambda features: session.run(None, {input_name: features})


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
        _build([model])
    except _LOAD_ERRORS:
        return True
    return False


def load_scorer(models: list[ModelFile]) -> OpenWakeWordScorer:
    """The scorer for ``models``, logging what was loaded."""
    scorer = OpenWakeWordScorer(models)
    log.info("wake words: %s", ", ".join(f"{m.name} ({m.path.name})" for m in models))
    return scorer
