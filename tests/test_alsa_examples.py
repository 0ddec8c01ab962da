"""The example ALSA configurations in config/alsa/ parse, and define the PCMs they name.

No sound card is needed: alsa-lib lists configured PCM names without one, and opening them
fails on the missing card ("No such device"), after the configuration has been read, instead
of on the configuration ("Invalid argument").
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "config" / "alsa").glob("*.conf"))
ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
#: Top-level PCM definitions, `pcm.name {` or `pcm.!name {` (an override of an existing name).
DEFINED = re.compile(r"^pcm\.!?(\w+)\s*\{", re.MULTILINE)
#: What alsa-lib prints for a configuration it cannot read or a field it does not know.
CONFIG_ERRORS = ("Unexpected", "parse", "Invalid", "Unknown", "corrupted")

#: Runs under ALSA_CONFIG_PATH: lists the PCM names, then opens each one both ways.
PROBE = """
import json
import alsaaudio

directions = {"capture": alsaaudio.PCM_CAPTURE, "playback": alsaaudio.PCM_PLAYBACK}
names = set().union(*(alsaaudio.pcms(direction) for direction in directions.values()))
errors = {}
for name in sorted(names - {"null"}):
    for kind, direction in directions.items():
        try:
            alsaaudio.PCM(direction, device=name).close()
        except alsaaudio.ALSAAudioError as error:
            errors[f"{name} {kind}"] = str(error)
print(json.dumps({"names": sorted(names), "errors": errors}))
"""


def test_the_examples_are_there() -> None:
    """The README links three examples."""
    assert {path.name for path in EXAMPLES} >= {
        "usb-mic-usb-speaker.conf",
        "shared-dsnoop-dmix.conf",
        "usb-speakerphone.conf",
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_parses_and_defines_its_pcms(example: Path, tmp_path: Path) -> None:
    """alsa-lib reads the example after its own alsa.conf without complaint."""
    pytest.importorskip("alsaaudio")
    if not ALSA_CONF.exists():
        pytest.skip(f"{ALSA_CONF} is missing (libasound2-data)")
    config = tmp_path / "asound.conf"
    config.write_text(f"<{ALSA_CONF}>\n{example.read_text()}")
    env = {
        **os.environ,
        "ALSA_CONFIG_PATH": str(config),
        # Keep a developer's own ~/.asoundrc out of it.
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    found = json.loads(result.stdout)
    complaints = [
        line for line in result.stderr.splitlines() if any(e in line for e in CONFIG_ERRORS)
    ]
    assert not complaints, result.stderr
    defined = set(DEFINED.findall(example.read_text()))
    assert defined, f"{example.name} defines no PCM"
    assert defined <= set(found["names"])
    bad_opens = {pcm: error for pcm, error in found["errors"].items() if "Invalid" in error}
    assert not bad_opens
