"""The echo bench's reading of what the bench speaker played (its log and content), on files
written here (no real time)."""

import struct
from pathlib import Path

import numpy as np
import pytest

from pispeaker.bench.echo import Played, _ducked_share
from pispeaker.bench.rig import PlayedReader, Speaker
from pispeaker.states import State

RATE = 48_000
READ = 48  # frames per read: 1 ms, as the speaker process reads


def speaker_files(tmp_path: Path, gains: list[float], start: float = 10.0) -> Speaker:
    """A speaker's log and content: 1 ms reads of a stereo 440 Hz tone at -10 dBFS, each
    scaled by its gain (0: nothing was read then)."""
    log, content = bytearray(), bytearray()
    t = np.arange(READ * len(gains)) / RATE
    tone = 0.3 * 32767 * np.sin(2 * np.pi * 440 * t)
    for index, gain in enumerate(gains):
        if gain:
            frames = np.round(tone[index * READ : (index + 1) * READ] * gain).astype("<i2")
            content += np.repeat(frames, 2).tobytes()
            log += struct.pack("<dI", start + index / 1000, 4 * READ)
    (tmp_path / "log").write_bytes(log)
    (tmp_path / "content").write_bytes(content)
    return Speaker(tmp_path / "fifo", RATE * 4, tmp_path / "log", tmp_path / "content")


@pytest.mark.parametrize("after", [0.0, 0.09])  # stopped, or ducked by 21 dB
def test_the_reply_is_down_when_a_whole_window_after_the_onset_is(
    tmp_path: Path, after: float
) -> None:
    gains = [1.0] * 1100 + [after] * 900  # halted 100 ms after the onset at 1.0 s
    played = Played(speaker_files(tmp_path, gains))
    down = played.down_after(11.0, RATE)
    assert down == pytest.approx(0.12, abs=0.006)  # the first window wholly after the halt


def test_a_reply_that_goes_on_is_never_down(tmp_path: Path) -> None:
    played = Played(speaker_files(tmp_path, [1.0] * 3000))
    assert played.down_after(11.0, RATE) is None


def test_the_reader_returns_what_was_played_since_in_whole_frames(tmp_path: Path) -> None:
    speaker_files(tmp_path, [1.0] * 3)
    content = (tmp_path / "content").read_bytes()
    with (tmp_path / "log").open("ab") as log:
        log.write(struct.pack("<dI", 10.003, 6)[:7])  # a record half written
    reader = PlayedReader(tmp_path / "log", tmp_path / "content", 8)
    assert b"".join(chunk for _, chunk in reader.new()) == content
    assert reader.new() == []
    with (tmp_path / "log").open("ab") as log, (tmp_path / "content").open("ab") as sound:
        sound.write(b"\x01" * 6)
        log.write(struct.pack("<dI", 10.003, 6)[7:])  # its rest: 6 bytes, not a whole frame
        sound.write(b"\x02" * 10)
        log.write(struct.pack("<dI", 10.004, 10))
    assert reader.new() == [(10.004, b"\x01" * 6 + b"\x02" * 10)]
    reader.close()


def test_the_ducked_share_counts_only_the_playing_time_within_the_span() -> None:
    states = [
        (0.0, State.LISTENING, 0.0),
        (1.0, State.SPEAKING, 0.0),  # 2 s playing, of which 0.5 s ducked
        (2.0, State.DUCKED, 0.0),
        (2.5, State.SPEAKING, 0.0),
        (3.0, State.LISTENING, 0.0),
        (4.0, State.SPEAKING, 0.0),  # 1 s more within the span, 2 s after it
    ]
    figure = _ducked_share(states, (0.5, 5.0))
    assert figure.value == pytest.approx(100 * 0.5 / 3.0)
