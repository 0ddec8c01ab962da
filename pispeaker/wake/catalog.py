"""Which wake-word models exist, and where their files are: no model is ever downloaded.

The built-in models are the .tflite files that the pyopen-wakeword package ships (the same
files openWakeWord 0.6.0 would otherwise fetch at run time); a custom model is a path to a
.tflite or .onnx file. This module only lists files, so configuration checks can use it
without loading openWakeWord.
"""

import difflib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from pispeaker.errors import ConfigError

#: The package whose data directory holds the built-in model files.
MODEL_PACKAGE = "pyopen_wakeword"
#: openWakeWord's shared front end: not wake words themselves.
FEATURE_MODELS = ("melspectrogram", "embedding_model")
CUSTOM_SUFFIXES = (".tflite", ".onnx")


@dataclass(frozen=True)
class ModelFile:
    """One wake-word model: the name detections carry, and its file."""

    name: str
    path: Path


def models_dir() -> Path:
    """The directory of the built-in model files. Found without importing the package
    (its ``__init__`` imports numpy, which check-config has no use for)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "wake.models",
            [f"wake.models: the {MODEL_PACKAGE} package is not installed; reinstall pispeaker"],
        )
    return Path(spec.submodule_search_locations[0]) / "models"


def builtin_names() -> list[str]:
    """The built-in wake words, sorted (e.g. alexa, hey_jarvis, hey_mycroft, ...)."""
    names = (path.stem for path in models_dir().glob("*.tflite"))
    return sorted(name for name in names if name not in FEATURE_MODELS)


def feature_model(name: str) -> Path:
    """The path of feature model ``name`` ("melspectrogram" or "embedding_model")."""
    return models_dir() / f"{name}.tflite"


def problem(spec: str) -> str | None:
    """Why ``spec`` (a built-in name or a model path) names no usable model, or None."""
    if spec.endswith(CUSTOM_SUFFIXES):
        return None if Path(spec).is_file() else f"model file {spec!r} does not exist"
    names = builtin_names()
    if spec in names:
        return None
    close = difflib.get_close_matches(spec, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"no built-in wake word {spec!r} ({hint}built-in: {', '.join(names)}; "
        f"or give the path of a custom .tflite or .onnx model)"
    )


def resolve(specs: list[str], source: str = "wake.models") -> list[ModelFile]:
    """The model files for ``specs``; raise ConfigError naming every bad one at once."""
    problems = [f"{source}: {text}" for text in map(problem, specs) if text]
    if problems:
        raise ConfigError(source, problems)
    return [_model_file(spec) for spec in specs]


def _model_file(spec: str) -> ModelFile:
    if spec.endswith(CUSTOM_SUFFIXES):
        return ModelFile(Path(spec).stem, Path(spec))
    return ModelFile(spec, models_dir() / f"{spec}.tflite")
