"""``pispeaker run`` as systemd runs it, without systemd: a NOTIFY_SOCKET listener, the daemon
as a subprocess on ALSA file PCMs (a FIFO microphone fed in real time, a FIFO speaker drained
in real time) talking to the Live API emulator."""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, silence
from pispeaker.bench.notify import DatagramSocket, Note, NotifyListener
from pispeaker.config import Config, redacted_toml
from pispeaker.emulator import LiveEmulator
from tests.alsa_rig import AlsaRig, PacedReader, PacedWriter

PISPEAKER = Path(sys.executable).parent / "pispeaker"
#: ``pispeaker ARGS`` that writes the modules it imported, as a JSON list, to the file named
#: by its first argument when it exits.
MODULES_AT_EXIT = (
    "import atexit, json, sys\n"
    "path = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(path, 'w').write(json.dumps(sorted(sys.modules))))\n"
    "from pispeaker.cli import main\n"
    "main(sys.argv[1:])\n"
)
#: How long a daemon may take to start: imports, wake-word models, opening the devices.
START_S = 30.0


class FakeJournal:
    """journald's native socket, for a daemon run in a mount namespace where this directory
    is /run/systemd/journal (libsystemd has the path built in): collects every entry."""

    def __init__(self) -> None:
        self.entries: list[dict[str, str]] = []
        self._socket = DatagramSocket("socket", self._receive)
        self.directory = self._socket.directory
        self.close = self._socket.close

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` run where this journal is the system's."""
        mount = (
            "mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/journal && "
            f'mount --bind {self.directory} /run/systemd/journal && exec "$@"'
        )
        return ["unshare", "--mount", "sh", "-c", mount, "sh", *command]

    def _receive(self, data: bytes) -> None:
        self.entries.append(parse_journal_entry(data))


def parse_journal_entry(data: bytes) -> dict[str, str]:
    """One datagram of journald's native protocol: ``NAME=value`` lines, or for a value with
    a newline ``NAME``, a newline, its length as 64-bit little-endian and the value."""
    fields: dict[str, str] = {}
    at = 0
    while at < len(data):
        end = data.index(b"\n", at)
        name, equals, value = data[at:end].partition(b"=")
        if equals:
            at = end + 1
        else:
            size = int.from_bytes(data[end + 1 : end + 9], "little")
            value = data[end + 9 : end + 9 + size]
            at = end + 9 + size + 1
        fields[name.decode()] = value.decode()
    return fields


def has(name: str, value: str | None = None) -> Callable[[Note], bool]:
    """Matches notes that set ``name`` (to ``value`` if given)."""
    return lambda note: name in note.fields and value in (None, note.fields[name])


def status_is(text: str) -> Callable[[Note], bool]:
    return lambda note: note.fields.get("STATUS") == text


@dataclass
class Daemon:
    """A running ``pispeaker run`` and what it tells its service manager."""

    process: asyncio.subprocess.Process
    notes: NotifyListener
    log_path: Path
    microphone: PacedWriter
    speaker: PacedReader
    config_path: Path
    journal: FakeJournal | None = None

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def exit_code(self, within_s: float = 15.0) -> int:
        async with asyncio.timeout(within_s):
            return await self.process.wait()


@dataclass
class ServiceRig:
    """Starts daemons in ``directory`` against ``emulator``; stops them all at the end."""

    directory: Path
    emulator: LiveEmulator
    alsa: AlsaRig
    stack: contextlib.AsyncExitStack
    started: list[Daemon] = field(default_factory=list)

    def config(self, **sections: dict[str, object]) -> Config:
        """The emulator configuration on the rig's devices, ``sections`` overriding keys."""
        config = Config()
        updates: dict[str, dict[str, object]] = {
            "live": {"base_url": self.emulator.base_url, "ca_file": self.emulator.ca_file},
            "audio": {
                "capture_device": "mic",
                "capture_rate": INPUT_RATE,
                "playback_device": "speaker",
                "playback_rate": OUTPUT_RATE,
            },
            "conversation": {"earcons": False, "follow_up_s": 1.0},
        }
        for name, keys in sections.items():
            updates[name] = updates.get(name, {}) | keys
        for name, keys in updates.items():
            section = getattr(config, name).model_copy(update=keys)
            config = config.model_copy(update={name: section})
        return config

    def write_config(self, config: Config | str, name: str = "pispeaker.toml") -> Path:
        """Write ``config`` (or raw text) where the daemon reads it."""
        path = self.directory / name
        path.write_text(config if isinstance(config, str) else redacted_toml(config, "test"))
        return path

    async def start(
        self,
        config: Config | str,
        said: bytes,
        watchdog_s: float | None = 1.0,
        environ: Mapping[str, str] | None = None,
        journal: bool = False,
        modules_to: Path | None = None,
    ) -> Daemon:
        """Run ``pispeaker run`` on ``config``; its microphone says ``said`` in real time,
        then silence for a minute. With ``journal``, its stderr is a journal stream (as under
        systemd) and the journal a FakeJournal; with ``modules_to``, the modules it imported
        are written there (a JSON list) when it exits."""
        config_path = self.write_config(config)
        index = len(self.started)
        mic_fifo = self.directory / f"mic-{index}.fifo"
        speaker_fifo = self.directory / f"speaker-{index}.fifo"
        os.mkfifo(mic_fifo)
        os.mkfifo(speaker_fifo)
        self.alsa.capture("mic", mic_fifo)
        self.alsa.playback("speaker", speaker_fifo)
        microphone = PacedWriter(
            mic_fifo, said + silence(60.0, INPUT_RATE), period=640, period_s=0.02, reopen=True
        )
        speaker = PacedReader(speaker_fifo, bytes_per_s=2 * OUTPUT_RATE)
        microphone.start()
        speaker.start()
        self.stack.callback(speaker.hang_up)
        self.stack.callback(microphone.finish)
        notes = NotifyListener()
        self.stack.callback(notes.close)
        log_path = self.directory / f"daemon-{index}.log"
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(notes.path),
            "ALSA_CONFIG_PATH": str(self.alsa.path),
            "GEMINI_API_KEY": self.emulator.api_key,
            "GPIOZERO_PIN_FACTORY": "mock",
            "STATE_DIRECTORY": str(self.directory / "state"),
            **({"WATCHDOG_USEC": str(round(watchdog_s * 1e6))} if watchdog_s else {}),
            **(environ or {}),
        }
        command = [str(PISPEAKER), "--config", str(config_path), "run"]
        if modules_to is not None:
            command = [sys.executable, "-c", MODULES_AT_EXIT, str(modules_to), *command[1:]]
        fake_journal = FakeJournal() if journal else None
        if fake_journal is not None:
            self.stack.callback(fake_journal.close)
            command = fake_journal.wrap(command)
        with log_path.open("wb") as log:
            if fake_journal is not None:  # what systemd sets when stderr is the journal
                status = os.fstat(log.fileno())
                env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
            process = await asyncio.create_subprocess_exec(*command, env=env, stderr=log)
        self.stack.push_async_callback(_stopped, process)
        daemon = Daemon(process, notes, log_path, microphone, speaker, config_path, fake_journal)
        self.started.append(daemon)
        return daemon


async def _stopped(process: asyncio.subprocess.Process) -> None:
    """Make sure a daemon a test left running is gone."""
    if process.returncode is None:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def service_rig(
    directory: Path, emulator: LiveEmulator, alsa: AlsaRig
) -> AsyncIterator[ServiceRig]:
    async with contextlib.AsyncExitStack() as stack:
        yield ServiceRig(directory, emulator, alsa, stack)
