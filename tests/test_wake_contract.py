"""The Scorer contract, held by the in-memory fakes and by openWakeWord itself; and how the
openWakeWord adapter loads built-in, custom and broken models."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pispeaker.audio.pcm import INPUT_RATE, silence, to_samples, tone
from pispeaker.errors import ConfigError
from pispeaker.wake.catalog import ModelFile, builtin_names, models_dir, resolve
from pispeaker.wake.detector import FRAME_BYTES, Scorer
from pispeaker.wake.engine import OpenWakeWordScorer
from tests.wake_fakes import WAKE_TONE_HZ, ToneScorer

SCORERS: dict[str, Callable[[], Scorer]] = {
    "tone": ToneScorer,
    "openwakeword": lambda: OpenWakeWordScorer(resolve(["hey_jarvis", "alexa"])),
}


@pytest.fixture(params=sorted(SCORERS))
def scorer(request: pytest.FixtureRequest) -> Scorer:
    return SCORERS[request.param]()


def frames(pcm: bytes) -> list[np.ndarray]:
    whole = len(pcm) - len(pcm) % FRAME_BYTES
    return [to_samples(pcm[i : i + FRAME_BYTES]) for i in range(0, whole, FRAME_BYTES)]


AUDIO = silence(0.5, INPUT_RATE) + tone(WAKE_TONE_HZ, 0.8, INPUT_RATE) + silence(0.5, INPUT_RATE)


def test_scores_every_model_it_names_between_0_and_1(scorer: Scorer) -> None:
    assert scorer.names
    for frame in frames(AUDIO):
        scores = scorer.score(frame)
        assert set(scores) == set(scorer.names)
        assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores.values())


def test_reset_makes_it_score_like_new(scorer: Scorer) -> None:
    first = [scorer.score(frame) for frame in frames(AUDIO)]
    scorer.reset()
    again = [scorer.score(frame) for frame in frames(AUDIO)]
    assert again == first  # bit for bit: the engine starts from the same state each time


def test_silence_is_not_a_wake_word(scorer: Scorer) -> None:
    scores = [scorer.score(frame) for frame in frames(silence(3.0, INPUT_RATE))]
    assert max(max(s.values()) for s in scores) < 0.1


def test_the_built_in_models_come_from_the_installed_package() -> None:
    assert builtin_names() == ["alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy", "okay_nabu"]
    scorer = OpenWakeWordScorer(resolve(builtin_names()))
    assert scorer.names == tuple(builtin_names())


def test_a_corrupt_model_is_named_with_the_built_in_choices(tmp_path: Path) -> None:
    broken = tmp_path / "kitchen.tflite"
    broken.write_bytes(b"not a model at all")
    with pytest.raises(ConfigError) as caught:
        OpenWakeWordScorer([*resolve(["alexa"]), ModelFile("kitchen", broken)])
    message = str(caught.value)
    assert f"cannot load 'kitchen' ({broken})" in message
    assert "built-in wake words: alexa, hey_jarvis, hey_mycroft, hey_rhasspy, okay_nabu" in message
    assert caught.value.exit_code == 78


def test_a_missing_model_lists_what_there_is() -> None:
    with pytest.raises(ConfigError, match=r"no built-in wake word 'ok_nabu'.*'okay_nabu'"):
        resolve(["ok_nabu"])


def onnx_model(path: Path, outputs: int = 1, weight: float = 0.0) -> Path:
    """A tiny wake-word head in openWakeWord's shape: 16 embeddings of 96 in, a score out."""
    features = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 96])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, outputs])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [1536, outputs], [weight] * 1536 * outputs)
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    graph = helper.make_graph(nodes, "wake", [features], [score], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by the installed onnxruntime
    onnx.save(model, str(path))
    return path


def test_a_custom_onnx_model_runs_beside_the_built_in_ones(tmp_path: Path) -> None:
    custom = onnx_model(tmp_path / "kitchen.onnx")
    scorer = OpenWakeWordScorer([*resolve(["hey_jarvis"]), ModelFile("kitchen", custom)])
    assert scorer.names == ("hey_jarvis", "kitchen")
    scores = [scorer.score(frame) for frame in frames(silence(1.0, INPUT_RATE))]
    # sigmoid(0) once the front end has filled (openWakeWord zeroes the first 5 frames)
    assert scores[-1]["kitchen"] == pytest.approx(0.5)


def test_a_custom_onnx_model_alone_needs_no_tflite_wake_word(tmp_path: Path) -> None:
    custom = onnx_model(tmp_path / "kitchen.onnx")
    scorer = OpenWakeWordScorer([ModelFile("kitchen", custom)])
    assert scorer.names == ("kitchen",)
    assert set(scorer.score(frames(silence(0.08, INPUT_RATE))[0])) == {"kitchen"}


def test_a_model_with_several_outputs_is_refused(tmp_path: Path) -> None:
    custom = onnx_model(tmp_path / "multi.onnx", outputs=3)
    with pytest.raises(ConfigError, match=r"cannot load 'multi'.*it has 3 outputs"):
        OpenWakeWordScorer([ModelFile("multi", custom)])


def test_nothing_is_downloaded_the_models_are_package_files() -> None:
    assert models_dir().is_dir()
    assert all(path.suffix == ".tflite" for path in models_dir().glob("*.*") if path.is_file())
