"""``pispeaker doctor``: everything between the owner and a working conversation, checked in
order, one line each with the next step for every problem (``--json`` for machines).

It works while the service runs: a device or pin the service holds is a warning saying the
check needs the service stopped, and every other check still runs. A check that depends on
an earlier one (a session needs a key and a reachable endpoint) is skipped when that failed.
"""

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pispeaker.config import Config
from pispeaker.credentials import ApiKey
from pispeaker.doctor import checks, network, unit
from pispeaker.doctor.results import Result, all_well, as_json, as_text, skipped

__all__ = ["Options", "examine", "run_doctor"]


@dataclass(frozen=True)
class Options:
    """What the command line asked for."""

    config_path: Path | None = None
    seconds: float = 3.0  # of microphone audio to judge
    play: bool = False  # play the chime on the speaker
    json: bool = False


async def examine(options: Options, environ: Mapping[str, str]) -> list[Result]:
    """Run every check in order; the results, one per line of the report."""
    config_result, config = checks.check_config(options.config_path)
    service, state = unit.service_results()  # read first: the device checks need to know
    if config is None:
        unusable = [skipped(name, "needs a valid configuration") for name in NEED_CONFIG]
        mcp = skipped("MCP servers", "needs a valid configuration")
        return [config_result, *unusable, *service, checks.check_state_dir(environ), mcp]
    key_result, key = checks.check_key(config.live, environ)
    active = state is not None and state.active
    service_pid = state.main_pid if state is not None and active else None
    return [
        config_result,
        key_result,
        *await _cloud(config, key),
        await checks.check_microphone(config.audio, options.seconds, service_pid),
        await checks.check_speaker(config.audio, options.play, environ, service_pid),
        await checks.check_wake(config.wake),
        await checks.check_panel(config.panel, active),
        *service,
        checks.check_state_dir(environ),
        await checks.check_mcp(config, environ),
    ]


#: The checks that cannot run without a configuration, in report order.
NEED_CONFIG = (
    "API key",
    "endpoint",
    "clock",
    "Live session",
    "microphone",
    "speaker",
    "wake word",
    "GPIO",
)


async def _cloud(config: Config, key: ApiKey | None) -> list[Result]:
    """The endpoint, the clock (against the endpoint's) and a session."""
    from pispeaker.live.genai import tls_context  # the SDK: only with a configuration

    live = config.live
    endpoint = network.Endpoint.of(live.base_url)
    context = tls_context(live) if endpoint.tls else None
    found = await asyncio.to_thread(network.reach, endpoint, context, live.connect_timeout_s)
    synchronized = await asyncio.to_thread(network.clock_synchronized)
    now = time.time()
    clock_wrong = network.clock_is_wrong(now, found, synchronized)
    results = [
        network.judge_endpoint(endpoint, found, clock_wrong),
        network.judge_clock(now, found, synchronized, endpoint.host),
    ]
    if key is None:
        results.append(skipped("Live session", "needs an API key"))
    elif found.failure:
        results.append(skipped("Live session", "needs the endpoint reachable"))
    else:
        results.append(await checks.check_session(live, key))
    return results


async def run_doctor(options: Options, environ: Mapping[str, str], out: TextIO) -> int:
    """Print the report (text or JSON); 0 when no check found a problem, else 1."""
    results = await examine(options, environ)
    out.write(as_json(results) if options.json else as_text(results))
    return 0 if all_well(results) else 1
