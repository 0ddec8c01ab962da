"""pispeaker's openWakeWord runtime (wake/engine.py) held to openWakeWord 0.6.0 itself: the
model shapes it relies on, and the same scores on the same audio once the front end has
filled. A new openWakeWord release that changes its front end or its models fails here."""

from pathlib import Path

import numpy as np
import pytest
import tflite_runtime.interpreter as tflite
from openwakeword.model import Model

from pispeaker.audio.pcm import INPUT_RATE, silence, to_samples
from pispeaker.audio.wavfile import read_wav
from pispeaker.bench.rig import NOISE_RMS
from pispeaker.wake.catalog import builtin_names, feature_model, models_dir, resolve
from pispeaker.wake.detector import FRAME_SAMPLES
from pispeaker.wake.engine import EMBEDDING, MEL_BANDS, MEL_FRAMES, MEL_INPUT, OpenWakeWordScorer

HEY_JARVIS = Path(__file__).parent.parent / "pispeaker" / "bench" / "hey_jarvis.wav"
#: Frames after which no trace of the starting state is left in either runtime: the mel
#: buffer (76 mel frames, 8 per frame) and then the longest model's 16 embeddings.
FILLED = 10 + 16


def shapes(path: Path, resize: list[int] | None = None) -> tuple[list[int], list[int]]:
    interpreter = tflite.Interpreter(model_path=str(path))
    if resize:
        interpreter.resize_tensor_input(0, resize, strict=True)
    interpreter.allocate_tensors()
    return (
        list(interpreter.get_input_details()[0]["shape"]),
        list(interpreter.get_output_details()[0]["shape"]),
    )


def test_the_front_end_models_have_the_shapes_the_engine_relies_on() -> None:
    mel_in, mel_out = shapes(feature_model("melspectrogram"), [1, MEL_INPUT])
    assert mel_in == [1, MEL_INPUT]
    assert mel_out == [1, 1, 8, MEL_BANDS]  # 8 mel frames per 80 ms
    embedding_in, embedding_out = shapes(feature_model("embedding_model"))
    assert embedding_in == [1, MEL_FRAMES, MEL_BANDS, 1]
    assert embedding_out == [1, 1, 1, EMBEDDING]


@pytest.mark.parametrize("name", builtin_names())
def test_every_built_in_model_scores_the_last_16_embeddings(name: str) -> None:
    assert shapes(models_dir() / f"{name}.tflite") == ([1, 16, EMBEDDING], [1, 1])


def speech_in_noise() -> np.ndarray:
    """Room noise, "hey jarvis" (espeak-ng) twice, and noise between: 6.4 s."""
    rng = np.random.default_rng(7)
    words = to_samples(read_wav(HEY_JARVIS, INPUT_RATE)).astype(np.float64)
    gap = silence(1.5, INPUT_RATE)
    audio = to_samples(gap + read_wav(HEY_JARVIS, INPUT_RATE) + gap).astype(np.float64)
    audio = np.concatenate([audio, words, to_samples(gap)])
    audio += rng.normal(0.0, NOISE_RMS, len(audio))
    whole = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
    return np.clip(np.round(audio[:whole]), -32768, 32767).astype(np.int16)


def openwakeword_scores(frames: np.ndarray, names: list[str]) -> list[dict[str, float]]:
    model = Model(
        wakeword_models=[str(models_dir() / f"{name}.tflite") for name in names],
        inference_framework="tflite",
        melspec_model_path=str(feature_model("melspectrogram")),
        embedding_model_path=str(feature_model("embedding_model")),
    )
    return [{k: float(v) for k, v in model.predict(frame).items()} for frame in frames]


def test_scores_are_openwakewords_own_once_the_front_end_has_filled() -> None:
    frames = speech_in_noise().reshape(-1, FRAME_SAMPLES)
    names = builtin_names()
    theirs = openwakeword_scores(frames, names)
    scorer = OpenWakeWordScorer(resolve(names))
    ours = [scorer.score(frame) for frame in frames]
    for frame, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        if frame >= FILLED:
            for name in names:
                assert mine[name] == pytest.approx(reference[name], abs=1e-5), (frame, name)
    peak = max(range(FILLED, len(ours)), key=lambda frame: ours[frame]["hey_jarvis"])
    assert ours[peak]["hey_jarvis"] > 0.5  # the comparison covers a detection, not just noise
