"""The speaker volume: 0-100, remembered across restarts, in software or on a mixer."""

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from pispeaker.audio.pcm import scale

log = logging.getLogger(__name__)

#: Level 100 is 0 dB and the levels map linearly onto decibels down to -RANGE_DB (the ear
#: hears decibels): 50 is -20 dB, 1 is -39.6 dB; 0 is silence.
RANGE_DB = 40.0


def state_dir(environ: Mapping[str, str]) -> Path:
    """Where pispeaker keeps what it learns: systemd's StateDirectory= when run as the
    service, else the XDG state directory of the user."""
    if "STATE_DIRECTORY" in environ:
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    xdg = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "pispeaker"


class Volume:
    """The level 0-100, saved in ``path`` whenever it changes.

    With a ``mixer`` (a hardware control setter) the level goes to the card and audio
    passes unchanged; without, ``apply`` scales audio in software.
    """

    def __init__(
        self,
        initial: int,
        path: Path | None = None,
        mixer: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self._mixer = mixer
        saved = self._saved_level()
        self.level: int = initial if saved is None else saved
        self._to_mixer()

    @property
    def gain(self) -> float:
        """The software gain for the level (1.0 when a mixer sets the volume)."""
        if self._mixer is not None:
            return 1.0
        if self.level == 0:
            return 0.0
        return float(10 ** (RANGE_DB * (self.level / 100 - 1) / 20))

    def apply(self, pcm: bytes) -> bytes:
        """``pcm`` at the current volume."""
        return scale(pcm, self.gain)

    def set(self, level: int) -> None:
        """Change the level (clamped to 0-100) and remember it."""
        self.level = max(0, min(100, level))
        self._to_mixer()
        if self.path is not None:
            self._save(self.path)

    def _saved_level(self) -> int | None:
        if self.path is None or not self.path.exists():
            return None
        text = self.path.read_text(encoding="ascii", errors="replace").strip()
        if text.isdigit() and 0 <= int(text) <= 100:
            return int(text)
        log.warning("ignoring %s: %r is not a volume 0-100", self.path, text[:20])
        return None

    def _save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".new")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(f"{self.level}\n", encoding="ascii")
            os.replace(temporary, path)  # atomic: a power cut leaves the old or the new level
        except OSError as error:
            log.warning("cannot remember the volume in %s: %s", path, error)
            with contextlib.suppress(OSError):  # only a half-written file to tidy
                temporary.unlink(missing_ok=True)

    def _to_mixer(self) -> None:
        if self._mixer is not None:
            self._mixer(self.level)
