"""The command line as a person runs it: real subprocesses, real exit codes."""

import os
import signal
import subprocess
import sys
import tempfile
import tomllib
import wave
from pathlib import Path

import numpy as np
from google import genai

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE
from pispeaker.audio.resample import resample
from pispeaker.config import Config
from pispeaker.demo import demo_utterance

ROOT = Path(__file__).resolve().parent.parent
SECRET = "AIzaSy-this-must-never-be-printed-0123"


def pispeaker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "pispeaker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=base | (env or {}),
    )


def test_check_config_accepts_the_shipped_file_and_prints_it() -> None:
    result = pispeaker("check-config", "config/pispeaker.toml")
    assert result.returncode == 0, result.stderr
    assert Config.model_validate(tomllib.loads(result.stdout)) == Config()


def test_check_config_reports_three_mistakes_at_once_with_exit_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[live]\nmodle = "x"\nsilence_duration_ms = 50\n[logging]\ntranscripts = "yes"\n'
    )
    result = pispeaker("--config", str(bad), "check-config")
    assert result.returncode == 78
    problems = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(problems) == 3, result.stderr
    assert any(p.startswith("live.modle:") and "did you mean 'model'" in p for p in problems)
    assert any(p.startswith("live.silence_duration_ms:") for p in problems)
    assert any(p.startswith("logging.transcripts:") for p in problems)


def test_check_config_hides_the_api_key(tmp_path: Path) -> None:
    result = pispeaker("check-config", "config/pispeaker.toml", env={"GEMINI_API_KEY": SECRET})
    assert result.returncode == 0
    assert SECRET not in result.stdout + result.stderr
    assert "$GEMINI_API_KEY" in result.stdout


def test_missing_config_file_names_it_and_exits_78(tmp_path: Path) -> None:
    result = pispeaker("check-config", str(tmp_path / "absent.toml"))
    assert result.returncode == 78
    assert "absent.toml" in result.stderr


def test_demo_runs_a_whole_conversation_and_writes_the_parroted_reply(tmp_path: Path) -> None:
    reply = tmp_path / "reply.wav"
    result = pispeaker("demo", "--fast", "--output", str(reply))
    assert result.returncode == 0, result.stderr
    states = [line.split()[2] for line in result.stdout.splitlines() if " state " in line]
    assert states == ["CONNECTING", "LISTENING", "THINKING", "SPEAKING", "LISTENING", "IDLE"]
    assert "LED: green, breathing" in result.stdout
    assert ", gemini-3.8-live\n" in result.stdout  # the GA model by default
    with wave.open(str(reply)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (OUTPUT_RATE, 1)
        played = wav.readframes(wav.getnframes())
    expected = np.frombuffer(resample(demo_utterance(), INPUT_RATE, OUTPUT_RATE), "<i2")
    parroted = np.frombuffer(played, "<i2")
    # The utterance ends in 40 ms of silence, where the service's voice detection ended
    # the turn; it resampled the turn with the silence after it: its filter's tail may
    # round a sample differently where the speech ends.
    assert len(expected) - len(parroted) <= round(0.05 * OUTPUT_RATE)
    assert np.max(np.abs(parroted.astype(int) - expected[: len(parroted)])) <= 2


def test_demo_shows_its_timeline_and_the_log_only_when_asked(tmp_path: Path) -> None:
    output = str(tmp_path / "r.wav")
    quiet = pispeaker("demo", "--fast", "--output", output)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # no log lines: the timeline is what the demo is for
    assert " INFO " not in quiet.stdout
    logged = pispeaker("-v", "demo", "--fast", "--output", output)
    said = [line for line in logged.stderr.splitlines() if "model said:" in line]
    assert len(said) == 1, logged.stderr  # the reply's transcript in one line, not in pieces
    assert said[0].endswith("model said: Reply 1.")


def test_the_common_options_go_before_or_after_the_command(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[live]\nvoice = "Puck"\n', encoding="utf-8")
    before = pispeaker("--config", str(path), "check-config")
    after = pispeaker("check-config", "--config", str(path))
    assert before.returncode == after.returncode == 0, after.stderr
    assert 'voice = "Puck"' in after.stdout
    assert before.stdout == after.stdout


def test_help_shows_the_defaults_of_options() -> None:
    text = " ".join(pispeaker("emulator", "--help").stdout.split())
    assert "TCP port (0 picks a free one) (default: 8443)" in text
    bench = " ".join(pispeaker("bench", "--help").stdout.split())
    report = Path(tempfile.gettempdir()) / "pispeaker-bench.json"  # not in a checkout
    assert f"(default: {report})" in bench.replace("- ", "-")


def test_demo_checks_where_it_writes_before_it_starts(tmp_path: Path) -> None:
    result = pispeaker("demo", "--fast", "--output", str(tmp_path / "missing" / "x.wav"))
    assert result.returncode == 64
    assert result.stdout == ""  # nothing ran
    assert f"--output {tmp_path / 'missing' / 'x.wav'}: no directory" in result.stderr
    absent = pispeaker("demo", "--wav", str(tmp_path / "absent.wav"))
    assert absent.returncode == 64
    assert "absent.wav: does not exist" in absent.stderr


def test_demo_reads_a_stereo_48khz_wav(tmp_path: Path) -> None:
    import numpy as np

    said = tmp_path / "said.wav"
    t = np.arange(48_000) / 48_000
    voice = np.round(0.3 * 32767 * np.sin(2 * np.pi * 250 * t)).astype("<i2")
    framed = np.concatenate([np.zeros(9600, "<i2"), voice, np.zeros(24000, "<i2")])
    with wave.open(str(said), "wb") as wav:
        wav.setnchannels(2), wav.setsampwidth(2), wav.setframerate(48_000)
        wav.writeframes(np.repeat(framed, 2).tobytes())
    reply = tmp_path / "reply.wav"
    result = pispeaker("demo", "--fast", "--wav", str(said), "--output", str(reply))
    assert result.returncode == 0, result.stderr
    with wave.open(str(reply)) as wav:
        assert abs(wav.getnframes() / OUTPUT_RATE - 1.0) <= 0.04  # 1 s of speech parroted


def test_emulator_command_serves_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pispeaker",
            "emulator",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert lines[1].split()[-1].startswith("https://127.0.0.1:")
        assert Path(lines[2].split()[-1]) == tmp_path / "emulator-ca.pem"
        assert (tmp_path / "emulator-ca.pem").read_text().startswith("-----BEGIN CERTIFICATE")
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_check_config_shows_the_ga_model_and_search() -> None:
    result = pispeaker("check-config", "config/pispeaker.toml")
    assert 'model = "gemini-3.8-live"' in result.stdout
    assert "google_search = true" in result.stdout


def test_check_config_warns_of_an_unknown_model(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    path.write_text('[live]\nmodel = "gemini-9-live"\n', encoding="utf-8")
    result = pispeaker("check-config", str(path))
    assert result.returncode == 0
    assert "# warning: live.model: 'gemini-9-live' is not a model pispeaker knows" in result.stderr


def test_demo_talks_to_another_model_when_asked(tmp_path: Path) -> None:
    model = "gemini-2.5-flash-native-audio-preview-12-2025"
    output = str(tmp_path / "r.wav")
    result = pispeaker("demo", "--fast", "--model", model, "--output", output, "-v")
    assert result.returncode == 0, result.stderr
    assert f", {model}\n" in result.stdout
    assert "speaking -> listening (reply done)" in result.stderr  # -v after the command


def test_demo_refuses_a_model_setting_it_cannot_take(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(
        '[live]\nthinking_level = "high"\nmodel = "gemini-3.8-live-extended-thinking"\n'
    )
    result = pispeaker("--config", str(config), "demo", "--fast", "--model", "gemini-3.8-live")
    assert result.returncode == 78
    assert "live.thinking_level: gemini-3.8-live reasons as it talks" in result.stderr


async def test_emulator_command_declines_every_turn_after_the_first_n(tmp_path: Path) -> None:
    from google.genai import types

    from pispeaker.bench.rig import emulator_process
    from pispeaker.emulator.certs import client_context
    from tests.conftest import audio_config, next_turn, padded, send_audio, speech

    with emulator_process(tmp_path, 0.0, 0.0, 0.0, decline_after=1) as endpoint:
        args = {"ssl": client_context(endpoint.ca_file), "ping_interval": None}
        options = types.HttpOptions(
            base_url=endpoint.base_url, api_version="v1beta", async_client_args=args
        )
        client = genai.Client(api_key=endpoint.api_key, http_options=options)
        # A model with proactive audio (2.5 models without it answer everything).
        live = client.aio.live.connect(model="gemini-3.8-live", config=audio_config())
        async with live as session:
            turns = []
            for _ in range(3):
                await send_audio(session, padded(speech(0.4)))
                turns.append(await next_turn(session))
    assert [bool(turn.audio) for turn in turns] == [True, False, False]
