"""Who holds a sound device, read from /proc/asound without opening it.

Opening a ``hw:`` device that another process holds waits until it is free, and pyalsaaudio
waits holding Python's interpreter lock: nothing else runs, no timeout fires. So the doctor
looks first: each PCM substream's ``status`` file says ``closed``, or the ``owner_pid`` of
the process that has it open.
"""

import re
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
#: Names that open a card's device directly (exclusively): hw:, plughw:, and the
#: card-level plugins over them. ``CARD=`` may be an index or an id.
_DIRECT = re.compile(
    r"^(?:plughw|hw|sysdefault|front):(?:CARD=)?(?P<card>[^,]+)(?:,(?:DEV=)?(?P<device>\d+))?$"
)
_OWNER = re.compile(r"^owner_pid\s*:\s*(\d+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Holder:
    """A process holding a device: its pid and command name."""

    pid: int
    name: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.name})"


def holder_of(
    device: str, capture: bool, suspect: int | None = None, proc: Path = PROC
) -> Holder | None:
    """Who holds the card device behind ALSA name ``device`` (every substream of it open),
    or None if it is free or the name does not say which card it is. For such a name, a
    ``suspect`` pid (the running service) holding any device of that direction counts: it
    most likely holds this one too."""
    asound = proc / "asound"
    match = _DIRECT.match(device)
    if match:
        card = match["card"]
        card_dir = asound / (f"card{card}" if card.isdigit() else card)
        owners = _owners(card_dir / f"pcm{match['device'] or 0}{'c' if capture else 'p'}")
        first = owners[0] if owners and None not in owners else None
        return None if first is None else _holder(first, proc)
    if suspect is not None:
        pattern = f"card*/pcm*{'c' if capture else 'p'}"
        held = [pid for pcm in asound.glob(pattern) for pid in _owners(pcm) if pid is not None]
        return _holder(suspect, proc) if suspect in held else None
    return None


def _owners(pcm: Path) -> list[int | None]:
    """The owner of each substream of ``pcm`` (None: closed); empty if there is none."""
    owners: list[int | None] = []
    for status in sorted(pcm.glob("sub*/status")):
        try:
            text = status.read_text()
        except OSError:
            continue
        found = _OWNER.search(text)
        owners.append(int(found[1]) if found and text.strip() != "closed" else None)
    return owners


def _holder(pid: int, proc: Path) -> Holder:
    try:
        name = (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        name = "gone"
    return Holder(pid, name)
