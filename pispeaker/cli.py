"""The ``pispeaker`` command line: subcommands, logging set-up and exit codes.

No hardware or cloud library (nor asyncio) is imported at the top: each subcommand imports
what it needs, so ``pispeaker --help`` and ``check-config`` stay fast and work on a machine
without them.
"""

import argparse
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pispeaker import __version__
from pispeaker.config import DEFAULT_CONFIG_PATH, Config, load_config
from pispeaker.errors import PispeakerError, UsageError

if TYPE_CHECKING:
    from pispeaker.emulator import LiveEmulator

log = logging.getLogger("pispeaker")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand. ``--config`` and ``-v`` are accepted
    before or after the subcommand; every option's help shows its default."""
    parser = argparse.ArgumentParser(
        prog="pispeaker",
        description="A Raspberry Pi smart speaker for the Gemini Live API.",
        formatter_class=_ShowDefaults,
    )
    parser.add_argument("--version", action="version", version=f"pispeaker {__version__}")
    _add_global_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_check_config(commands)
    commands.add_parser(
        "run", help="run the speaker (as the systemd service does; SIGHUP reloads the config)"
    )
    _add_demo(commands)
    _add_emulator(commands)
    _add_sound_checks(commands)
    _add_wake_check(commands)
    _add_wake_journal(commands)
    _add_panel_checks(commands)
    _add_bench(commands)
    _add_tools(commands)
    _add_doctor(commands)
    for command in commands.choices.values():
        command.formatter_class = _ShowDefaults
        # SUPPRESS: given only before the subcommand, the value stays (no default after it)
        _add_global_options(command, argparse.SUPPRESS)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH}; built-in defaults if absent)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default if default is not None else 0,
        help="show the log on the terminal; -vv: at debug level ('run': -v is debug level)",
    )


class _ShowDefaults(argparse.HelpFormatter):
    """Appends an option's default to its help, unless it has none (None, off) or the help
    already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        quiet = action.default in (None, False, argparse.SUPPRESS) or "default" in text
        if quiet or not action.option_strings:
            return action.help
        return f"{text} (default: %(default)s)"


#: Where files a command writes go unless told otherwise: not the working directory, which
#: may be a checkout (untracked files) or not writable.
OUTPUT_DIR = Path(tempfile.gettempdir())


def _add_doctor(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check everything a conversation needs, in order, with the next step for each "
        "problem; exit 1 if there is one (works while the service runs)",
    )
    doctor.add_argument("--json", action="store_true", help="one JSON object, for machines")
    doctor.add_argument(
        "--seconds", type=float, default=3.0, help="microphone audio to judge (default 3)"
    )
    doctor.add_argument("--play", action="store_true", help="play a chime on the speaker")


def _add_tools(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    tools = commands.add_parser(
        "tools",
        help="list the tools the model would get (built-in and MCP servers'); "
        "exit 1 if an MCP server cannot be reached",
    )
    tools.add_argument("--call", metavar="NAME", help="call this tool and print its answer")
    tools.add_argument(
        "--args", default="{}", metavar="JSON", help="the call's arguments (a JSON object)"
    )


def _add_check_config(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    check = commands.add_parser(
        "check-config", help="validate a configuration file and print the effective settings"
    )
    check.add_argument("path", nargs="?", type=Path, help="file to check (default: --config)")


def _add_demo(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    demo = commands.add_parser(
        "demo", help="talk to the embedded Live API emulator: no sound card, key or network"
    )
    demo.add_argument(
        "--wav", "--input", type=Path, help="WAV file to say (default: a generated voice)"
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=OUTPUT_DIR / "pispeaker-demo-reply.wav",
        help="WAV file to write the reply to",
    )
    demo.add_argument(
        "--fast", action="store_true", help="end 1 s after the reply (not the follow-up window)"
    )
    demo.add_argument(
        "--model", help="Live model to talk to (default: live.model, gemini-3.8-live)"
    )


def _add_emulator(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    emulator = commands.add_parser("emulator", help="run the Live API emulator standalone")
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulator.add_argument("--port", type=int, default=8443, help="TCP port (0 picks a free one)")
    emulator.add_argument("--api-key", default=None, help="the key it accepts")
    emulator.add_argument("--pace", type=float, default=0.0, help="1 real time, 0 fastest")
    emulator.add_argument(
        "--playback-hold",
        type=float,
        default=1.0,
        help="how long turnComplete waits for the reply to play: 1 real time, 0 not at all",
    )
    emulator.add_argument(
        "--response-latency", type=float, default=0.3, help="seconds before a reply starts"
    )
    emulator.add_argument(
        "--lifetime", type=float, default=600.0, help="connection lifetime in seconds (goAway)"
    )
    emulator.add_argument("--state-dir", type=Path, help="where to write the CA certificate")
    emulator.add_argument("--timeline", type=Path, help="append every event to this JSONL file")
    emulator.add_argument(
        "--reply-audio",
        type=Path,
        help="answer every turn with this 24 kHz mono s16le audio (default: the user's words)",
    )
    emulator.add_argument(
        "--decline-after",
        type=int,
        metavar="N",
        help="answer the first N turns, then decline every later one, as a model that hears "
        "talk not meant for it (proactive audio)",
    )


def _add_sound_checks(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    commands.add_parser(
        "devices",
        help="list sound cards and ALSA devices with what they accept, and suggest config lines",
    )
    mic = commands.add_parser(
        "test-mic", help="show the configured microphone's level live (Ctrl-C stops)"
    )
    mic.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    mic.add_argument(
        "--output", "--record", type=Path, help="also save what it heard to this WAV file"
    )
    speaker = commands.add_parser(
        "test-speaker", help="play a tone or a chime on the configured speaker"
    )
    speaker.add_argument("--frequency", type=float, default=440.0, help="tone in Hz")
    speaker.add_argument("--seconds", type=float, default=1.0, help="tone length")
    speaker.add_argument("--chime", action="store_true", help="play the chime instead")


def _add_panel_checks(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    button = commands.add_parser(
        "test-button", help="show the button's raw edges and gestures live (Ctrl-C stops)"
    )
    button.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    leds = commands.add_parser("test-leds", help="show every state's look on the LEDs in turn")
    leds.add_argument(
        "--seconds-per-state", type=float, default=3.0, help="how long to show each state"
    )


def _add_wake_check(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    wake = commands.add_parser(
        "test-wake", help="show the wake-word scores live, from the microphone or a WAV file"
    )
    wake.add_argument("--wav", type=Path, help="score this WAV file instead of the microphone")
    wake.add_argument("--seconds", type=float, default=0.0, help="stop the microphone after")


def _add_wake_journal(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    journal = commands.add_parser(
        "wake-journal",
        help="list the wake-word detections journalled (wake.journal), the likely false ones "
        "marked, and suggest a threshold per model",
    )
    journal.add_argument(
        "--dir",
        type=Path,
        help="the journal's directory, or the state directory holding it (default: "
        "wake-journal in $STATE_DIRECTORY, else in "
        "~/.local/state/pispeaker)",
    )
    journal.add_argument("--json", action="store_true", help="print it all as JSON")


def _add_bench(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    bench = commands.add_parser(
        "bench",
        help="measure latency, CPU and memory on this machine (emulator and ALSA file PCMs)",
    )
    bench.add_argument(
        "--short", action="store_true", help="every figure from fewer samples (about a minute)"
    )
    bench.add_argument(
        "--output",
        type=Path,
        default=OUTPUT_DIR / "pispeaker-bench.json",
        help="JSON report file to write",
    )
    bench.add_argument(
        "--conversations",
        type=int,
        help="conversations back to back for the memory figures (default 1000, short 10)",
    )
    bench.add_argument(
        "--speed",
        type=float,
        default=8.0,
        help="how much faster than real time those conversations run (default 8)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pispeaker`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=_log_level(args.command, args.verbose),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.verbose < 2:  # connection chatter of websockets and the MCP SDK's HTTP client
        for chatty in ("websockets", "httpx2", "mcp"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return _run(args)
    except PispeakerError as error:
        print(f"pispeaker: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


def _log_level(command: str, verbose: int) -> int:
    """The service logs what it does (its log is the journal); a command run by hand shows
    what it was run for, and its log only when asked (warnings and errors always)."""
    if command == "run":
        return logging.DEBUG if verbose else logging.INFO
    return (logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG


def _run(args: argparse.Namespace) -> int:
    if args.command == "check-config":
        return _check_config(args.path or args.config or DEFAULT_CONFIG_PATH)
    if args.command == "run":
        from pispeaker.service.daemon import run_daemon

        return run_daemon(lambda: _config(args.config), os.environ, args.verbose > 0)
    if args.command == "demo":
        return _demo(_config(args.config), args)
    if args.command in SOUND_CHECKS:
        return _sound_check(_config(args.config), args)
    if args.command == "test-wake":
        return _wake_check(_config(args.config), args)
    if args.command == "wake-journal":
        return _wake_journal(_config(args.config), args)
    if args.command in PANEL_CHECKS:
        return _panel_check(_config(args.config), args)
    if args.command == "bench":
        return _bench(_config(args.config), args)
    if args.command == "tools":
        return _tools(_config(args.config), args)
    if args.command == "doctor":
        return _doctor(args)
    return _emulator(args)


def _config(path: Path | None) -> Config:
    """The explicit file, else the default file if it exists, else built-in defaults."""
    if path is None and not DEFAULT_CONFIG_PATH.exists():
        log.info("no %s; using built-in defaults", DEFAULT_CONFIG_PATH)
        return Config()
    return load_config(path or DEFAULT_CONFIG_PATH)


def _wait(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a subcommand's ``coroutine`` to its exit code."""
    import asyncio

    return asyncio.run(coroutine)


def _check_config(path: Path) -> int:
    from pispeaker.config import redacted_toml
    from pispeaker.credentials import describe_api_key, describe_mcp_tokens, find_api_key

    config = load_config(path)
    status = describe_api_key(find_api_key(config.live, os.environ))
    print(redacted_toml(config, status), end="")
    for line in describe_mcp_tokens(config.tools.mcp, os.environ):
        print(f"# {line}")
    for warning in config.warnings():
        print(f"# warning: {warning}", file=sys.stderr)
    print(f"# {path}: OK", file=sys.stderr)
    return 0


def _demo(config: Config, args: argparse.Namespace) -> int:
    from pispeaker.demo import DemoOptions, run_demo, with_model

    if args.model:
        config = with_model(config, args.model)
    if args.wav is not None:
        _readable("--wav", args.wav)
    _writable("--output", args.output)
    options = DemoOptions(input_wav=args.wav, output_wav=args.output, fast=args.fast)
    return _wait(run_demo(config, options))


def _readable(option: str, path: Path) -> None:
    """Raise UsageError unless ``path`` is a file that can be read: found before the
    command starts, not after it has run."""
    if not path.is_file() or not os.access(path, os.R_OK):
        reason = "is not a file" if path.exists() else "does not exist"
        raise UsageError(f"{option} {path}: {reason}; give a WAV file that can be read")


def _writable(option: str, path: Path) -> None:
    """Raise UsageError unless a file can be written at ``path``."""
    folder = path.parent
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file name in it")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: no directory {folder}; create it or pick another")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: cannot write there; pick another place")


SOUND_CHECKS = ("devices", "test-mic", "test-speaker")


def _sound_check(config: Config, args: argparse.Namespace) -> int:
    from pispeaker import soundcheck

    if args.command == "devices":
        return soundcheck.show_devices(sys.stdout)
    if args.command == "test-mic":
        if args.output is not None:
            _writable("--output", args.output)
        return _wait(soundcheck.test_mic(config.audio, args.seconds, args.output, sys.stdout))
    return _test_speaker(config, args)


def _test_speaker(config: Config, args: argparse.Namespace) -> int:
    from pispeaker import soundcheck
    from pispeaker.app import build_volume

    volume = build_volume(config.audio, os.environ)
    return _wait(
        soundcheck.test_speaker(
            config.audio, volume, args.frequency, args.seconds, args.chime, sys.stdout
        )
    )


PANEL_CHECKS = ("test-button", "test-leds")


def _panel_check(config: Config, args: argparse.Namespace) -> int:
    from pispeaker import panelcheck

    if args.command == "test-button":
        return _wait(panelcheck.test_button(config.panel, args.seconds, sys.stdout))
    return _wait(panelcheck.test_leds(config.panel, args.seconds_per_state, sys.stdout))


def _wake_check(config: Config, args: argparse.Namespace) -> int:
    from pispeaker.wakecheck import test_wake

    if args.wav is not None:
        _readable("--wav", args.wav)
    return _wait(test_wake(config, args.wav, args.seconds, sys.stdout))


def _wake_journal(config: Config, args: argparse.Namespace) -> int:
    from pispeaker.audio.volume import state_dir
    from pispeaker.wake.journal import DIRECTORY
    from pispeaker.wakejournal import show_journal

    directory = args.dir or state_dir(os.environ) / DIRECTORY
    if (directory / DIRECTORY).is_dir():  # the state directory itself was given
        directory = directory / DIRECTORY
    wake = config.wake
    thresholds = {Path(spec).stem: wake.threshold_of(Path(spec).stem) for spec in wake.models}
    return show_journal(directory, wake.journal, thresholds, args.json, sys.stdout)


def _bench(config: Config, args: argparse.Namespace) -> int:
    from pispeaker.bench.runner import BenchOptions, run_bench

    _writable("--output", args.output)
    if not args.verbose:  # the soak's faults make its conversations warn, as they should
        logging.getLogger("pispeaker").setLevel(logging.ERROR)
    conversations = args.conversations or (10 if args.short else 1000)
    options = BenchOptions(args.output, args.short, conversations, args.speed)
    return _wait(run_bench(config, options, sys.stdout))


def _tools(config: Config, args: argparse.Namespace) -> int:
    from pispeaker.toolcheck import call_tool, list_tools

    if args.call:
        return _wait(call_tool(config, args.call, args.args, sys.stdout))
    return _wait(list_tools(config, sys.stdout))


def _doctor(args: argparse.Namespace) -> int:
    from pispeaker.doctor import Options, run_doctor

    if not args.verbose:  # the checks' own log lines would bury the report
        logging.getLogger().setLevel(logging.ERROR)
    options = Options(args.config, args.seconds, args.play, args.json)
    return _wait(run_doctor(options, os.environ, sys.stdout))


def _emulator(args: argparse.Namespace) -> int:
    from pispeaker.emulator import EmulatorOptions, LiveEmulator, Reply
    from pispeaker.emulator.options import DEFAULT_API_KEY

    reply = Reply(audio=args.reply_audio.read_bytes()) if args.reply_audio else Reply()
    options = EmulatorOptions(
        host=args.host,
        port=args.port,
        api_keys=frozenset({args.api_key or DEFAULT_API_KEY}),
        pace=args.pace,
        playback_hold=args.playback_hold,
        response_latency_s=args.response_latency,
        connection_lifetime_s=args.lifetime or None,
        go_away_lead_s=min(50.0, (args.lifetime or 100.0) / 2),
        timeline_path=args.timeline,
        default_reply=reply if args.decline_after is None else Reply(declined=True),
    )
    emulator = LiveEmulator(options, state_dir=args.state_dir)
    emulator.script.push(*[reply] * (args.decline_after or 0))
    return _wait(_serve_emulator(emulator))


async def _serve_emulator(emulator: "LiveEmulator") -> int:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with emulator:
        print(
            f"Live API emulator listening.\n"
            f"  base URL: {emulator.base_url}\n"
            f"  CA file:  {emulator.ca_file}\n"
            f"  API key:  {emulator.api_key}\n"
            f"Use it from pispeaker.toml:\n"
            f'  [live]\n  base_url = "{emulator.base_url}"\n  ca_file = "{emulator.ca_file}"\n'
            f"with GEMINI_API_KEY={emulator.api_key}. Stop with Ctrl-C.",
            flush=True,
        )
        await stop.wait()
    return 0
