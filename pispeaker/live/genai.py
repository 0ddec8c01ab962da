"""The one module that speaks google-genai: the client, the session configuration, one
session's traffic, and what its failures mean, all translated to and from
``pispeaker.live.port``'s types.

The same code talks to the real service and to the emulator: only ``live.base_url``,
``live.api_version`` and ``live.ca_file`` differ.
"""

import asyncio
import contextlib
import logging
import math
import re
import ssl
import zlib
from collections.abc import AsyncIterator
from typing import Any

import websockets
from google import genai
from google.genai import errors, types
from google.genai.live import AsyncSession
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from pispeaker.config import LiveConfig
from pispeaker.live.models import ModelRules, Proactive, known_models, rules_of
from pispeaker.live.port import (
    Failure,
    Kind,
    Message,
    Speaker,
    ToolRequest,
    Transcript,
    Usage,
)
from pispeaker.tools import Tool

log = logging.getLogger(__name__)

INPUT_MIME = "audio/pcm;rate=16000"
#: Unreadable server messages in a row that end a session: fewer are skipped (each with a
#: warning), so one broken message costs nothing; a stream of them means a broken connection,
#: which a reconnect (a malformed-message failure, transient) may mend.
UNREADABLE_LIMIT = 20
#: The SDK's client, for those that hold one without speaking the SDK.
Client = genai.Client

_START = {
    "high": types.StartSensitivity.START_SENSITIVITY_HIGH,
    "low": types.StartSensitivity.START_SENSITIVITY_LOW,
}
_END = {
    "high": types.EndSensitivity.END_SENSITIVITY_HIGH,
    "low": types.EndSensitivity.END_SENSITIVITY_LOW,
}
_ACTIVITY = {
    "interrupt": types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
    "no_interruption": types.ActivityHandling.NO_INTERRUPTION,
}


def make_client(live: LiveConfig, api_key: str) -> genai.Client:
    """A client for ``live.base_url`` with pispeaker's websocket settings."""
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=live.base_url,
            api_version=live.api_version,
            async_client_args=_websocket_args(live),
        ),
    )


def _websocket_args(live: LiveConfig) -> dict[str, Any]:
    # Passed through to websockets' connect(). The default 20 s keepalive is shorter than
    # the Live API's observed pong latency, so the interval is config (0 disables).
    args: dict[str, Any] = {
        "ping_interval": live.ping_interval_s or None,
        "ping_timeout": live.ping_timeout_s,
        "open_timeout": live.connect_timeout_s,
        "compression": None,  # websockets' default deflate, replaced by:
        "extensions": [uplink_deflate()],
    }
    if live.ca_file is not None:
        args["ssl"] = tls_context(live)
    return args


def tls_context(live: LiveConfig) -> ssl.SSLContext:
    """The TLS client context for ``live.base_url``: the system's CAs, plus ``live.ca_file``."""
    context = ssl.create_default_context()
    if live.ca_file is not None:
        context.load_verify_locations(cafile=str(live.ca_file))
    return context


def uplink_deflate() -> ClientPerMessageDeflateFactory:
    """permessage-deflate as websockets offers it by default (the same offer, so the same
    handshake, and the server's replies compressed as before), but what pispeaker sends is
    Huffman-coded only. A 20 ms chunk is a JSON message of base64 text, 50 a second: Huffman
    coding takes most of what deflate saves on it (0.73 of the size, where full deflate
    gets 0.66), without the string matching that is most of deflate's time (measured at the
    uplink's pace: 51 -> 27 us a message)."""
    return ClientPerMessageDeflateFactory(
        compress_settings={"memLevel": 5, "strategy": zlib.Z_HUFFMAN_ONLY}
    )


def connect_config(
    live: LiveConfig,
    resume_handle: str | None = None,
    tools: list[Tool] | None = None,
    instruction: str | None = None,
) -> types.LiveConnectConfig:
    """The LiveConnectConfig for one session of ``live.model`` (``resume_handle`` continues
    an earlier one), declaring ``tools`` the way the model runs them; ``instruction`` is the
    system instruction (default: ``live.system_instruction`` alone)."""
    rules = rules_of(live.model)
    return types.LiveConnectConfig(
        tools=declarations(tools or [], rules, live.google_search) or None,
        response_modalities=[types.Modality.AUDIO],
        system_instruction=instruction or live.system_instruction,
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=live.voice)
            ),
            language_code=live.language or None,
        ),
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(
                disabled=False,
                start_of_speech_sensitivity=_START[live.start_of_speech_sensitivity],
                end_of_speech_sensitivity=_END[live.end_of_speech_sensitivity],
                prefix_padding_ms=live.prefix_padding_ms,
                silence_duration_ms=live.silence_duration_ms,
            ),
            activity_handling=_ACTIVITY[live.activity_handling],
        ),
        input_audio_transcription=_enabled(live.input_transcription),
        output_audio_transcription=_enabled(live.output_transcription),
        session_resumption=(
            types.SessionResumptionConfig(handle=resume_handle) if live.session_resumption else None
        ),
        context_window_compression=(
            types.ContextWindowCompressionConfig(sliding_window=types.SlidingWindow())
            if live.context_window_compression
            else None
        ),
        thinking_config=_thinking(live),
        proactivity=_proactivity(live, rules),
        enable_affective_dialog=live.affective_dialog or None,
    )


def _enabled(flag: bool) -> types.AudioTranscriptionConfig | None:
    return types.AudioTranscriptionConfig() if flag else None


def _thinking(live: LiveConfig) -> types.ThinkingConfig | None:
    """Only what the owner set (the config has checked the model takes it)."""
    if live.thinking_level:
        return types.ThinkingConfig(thinking_level=types.ThinkingLevel(live.thinking_level.upper()))
    if live.thinking_budget != -1:
        return types.ThinkingConfig(thinking_budget=live.thinking_budget)
    return None


def _proactivity(live: LiveConfig, rules: ModelRules) -> types.ProactivityConfig | None:
    """Sent only where it is a choice: a model that always or never has it refuses it."""
    if live.proactive_audio == "model" or rules.proactive_audio is not Proactive.OPTIONAL:
        return None
    return types.ProactivityConfig(proactive_audio=live.proactive_audio == "on")


def declarations(tools: list[Tool], rules: ModelRules, google_search: bool) -> list[types.Tool]:
    """The tools as the session setup declares them: functions with JSON schema parameters,
    NON_BLOCKING where the model runs them so (see ``ModelRules.runs_async``), and Google
    Search when asked for."""
    declared = []
    if tools:
        functions = [_function(tool, rules) for tool in tools]
        declared.append(types.Tool(function_declarations=functions))
    if google_search:
        declared.append(types.Tool(google_search=types.GoogleSearch()))
    return declared


def _function(tool: Tool, rules: ModelRules) -> types.FunctionDeclaration:
    return types.FunctionDeclaration(
        name=tool.name,
        description=tool.description,
        parameters_json_schema=tool.parameters,
        behavior=_behavior(tool, rules),
    )


def _behavior(tool: Tool, rules: ModelRules) -> types.Behavior | None:
    """Said outright where the model has both kinds (3.8 runs an undeclared call in the
    background, 2.5 waits for it); a model with one kind is not told."""
    if rules.runs_async(tool):
        return types.Behavior.NON_BLOCKING
    return types.Behavior.BLOCKING if rules.async_tools else None


class Session:
    """One open Live session, in pispeaker's terms."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def send_audio(self, pcm: bytes) -> None:
        """Send one chunk of 16 kHz s16le microphone audio."""
        await self._session.send_realtime_input(audio=types.Blob(data=pcm, mime_type=INPUT_MIME))

    async def note(self, text: str) -> None:
        """Tell the model ``text`` as context, without asking for an answer (clientContent
        with turnComplete false; only for models whose rules allow ``notes``)."""
        context = types.Content(role="user", parts=[types.Part(text=text)])
        await self._session.send_client_content(turns=context, turn_complete=False)

    async def respond(
        self, request: ToolRequest, response: dict[str, Any], scheduling: str | None = None
    ) -> None:
        """Answer one tool call; ``scheduling`` (SILENT, WHEN_IDLE, INTERRUPT) says what the
        model does with the answer of a NON_BLOCKING call."""
        answer = types.FunctionResponse(
            id=request.id,
            name=request.name,
            response=response,
            scheduling=types.FunctionResponseScheduling(scheduling) if scheduling else None,
        )
        await self._session.send_tool_response(function_responses=[answer])

    async def close(self) -> None:
        """Close with 1000, a normal closure."""
        await self._session.close()

    async def receive(self) -> AsyncIterator[Message]:
        """Every server message, translated, until the session ends (it raises then).

        A message the SDK cannot read is skipped with a warning (UNREADABLE_LIMIT of them in
        a row end the session as a malformed-message failure).
        """
        unreadable = 0
        while True:  # the SDK's receive() ends after every turnComplete, and on an error
            messages = aiter(self._session.receive())
            while True:
                try:
                    message = await anext(messages)
                except StopAsyncIteration:
                    break
                except Exception as error:  # noqa: BLE001 - _skip re-raises all but unreadable
                    unreadable = _skip(error, unreadable + 1)
                    break
                unreadable = 0
                yield translate(message)


@contextlib.asynccontextmanager
async def connect(
    client: genai.Client,
    live: LiveConfig,
    handle: str | None,
    tools: list[Tool],
    instruction: str | None = None,
) -> AsyncIterator[Session]:
    """Open a session of ``live.model`` (resuming ``handle`` if given) declaring ``tools``,
    with ``instruction`` as its system instruction."""
    config = connect_config(live, handle, tools, instruction)
    async with contextlib.AsyncExitStack() as stack:
        # websockets' open_timeout bounds the handshake; this also bounds the setup, which
        # a service may accept and never answer (TimeoutError: transient, reconnect).
        async with asyncio.timeout(live.connect_timeout_s):
            connecting = client.aio.live.connect(model=live.model, config=config)
            session = await _setup_answered(stack, connecting)
        yield Session(session)


async def try_session(live: LiveConfig, api_key: str) -> Failure | None:
    """Open a session of ``live.model`` at ``live.base_url`` as the speaker would (no tools,
    nothing sent) and close it at once: None if the setup was accepted, else why not."""
    client = make_client(live, api_key)
    try:
        async with connect(client, live, None, []) as session:
            await session.close()
    except Exception as error:  # noqa: BLE001 - classify re-raises what is not a failure
        return classify(error)
    finally:
        await client.aio.aclose()
    return None


async def _setup_answered(
    stack: contextlib.AsyncExitStack, connecting: contextlib.AbstractAsyncContextManager[Any]
) -> AsyncSession:
    """Enter ``connecting``. The SDK takes the first message for the answer to the setup;
    one it cannot read fails the connection as a malformed message (ValueError, transient),
    as it does later in the session: also JSON that is not an object (AttributeError) or is
    nested too deeply (RecursionError), which would otherwise pass for bugs."""
    try:
        session: AsyncSession = await stack.enter_async_context(connecting)
    except (AttributeError, RecursionError) as error:
        raise ValueError(f"the answer to the setup cannot be read: {error!r}") from error
    return session


def _skip(error: Exception, unreadable: int) -> int:
    """Skip the message the SDK raised ``error`` for, with a warning; ``unreadable`` counts
    this one and those before it in a row. Raise ``error`` itself if it is no unreadable
    message (a close, a lost connection), a ValueError once there were UNREADABLE_LIMIT."""
    if not _unreadable(error):
        raise error
    what = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    if unreadable >= UNREADABLE_LIMIT:
        raise ValueError(f"{unreadable} unreadable messages in a row, the last: {what}")
    log.warning("skipped a message from the Live API that cannot be read (%s)", what)
    return unreadable


def _unreadable(error: Exception) -> bool:
    """Whether the SDK raised ``error`` for one message it could not read, the connection
    still open: not JSON (ValueError), JSON too deeply nested (RecursionError), not an
    object (AttributeError, TypeError), no known field (TypeError, or an APIError with the
    message itself as details when it has a numeric "code": an error reported in a
    message, not a close), a field of the wrong type (pydantic's ValueError, or an
    AttributeError from the SDK's enum lookup)."""
    if isinstance(error, errors.APIError):
        return not isinstance(error.details, str)  # a close's details are its reason
    return isinstance(error, ValueError | TypeError | AttributeError | RecursionError)


def translate(message: types.LiveServerMessage) -> Message:
    """The parts of ``message`` pispeaker acts on; parts it cannot use (a goAway's unreadable
    time, a function call without an id) are logged in one warning."""
    content = message.server_content or _NO_CONTENT
    update = message.session_resumption_update
    cancelled = message.tool_call_cancellation
    problems: list[str] = []
    translated = Message(
        interrupted=bool(content.interrupted),
        audio=_audio_of(content),
        transcripts=_transcripts_of(content),
        turn_complete=bool(content.turn_complete),
        model_turn=bool(content.model_turn) or bool(message.tool_call),
        tool_calls=_calls_of(message.tool_call, problems),
        cancelled_calls=tuple(cancelled.ids or ()) if cancelled else (),
        go_away_s=_go_away_of(message.go_away, problems),
        handle=update.new_handle if update and update.resumable and update.new_handle else None,
        reasoning=_reasoning_of(content.interaction_status),
        usage=_usage_of(message.usage_metadata),
        search_queries=_queries_of(content.grounding_metadata),
    )
    if problems:
        log.warning("a message from the Live API %s", "; ".join(problems))
    return translated


_NO_CONTENT = types.LiveServerContent()  # for messages without one: made once, read only
_REASONING = {
    types.InteractionStatus.IN_PROGRESS: True,
    types.InteractionStatus.IDLE: False,
    types.InteractionStatus.REQUIRES_ACTION: False,  # the deprecated name of IDLE
}


def _reasoning_of(status: types.InteractionStatus | None) -> bool | None:
    return _REASONING.get(status) if status else None


def _usage_of(usage: types.UsageMetadata | None) -> Usage | None:
    if usage is None:
        return None
    prompt, response = usage.prompt_token_count or 0, usage.response_token_count or 0
    return Usage(prompt, response, usage.total_token_count or prompt + response)


def _queries_of(grounding: types.GroundingMetadata | None) -> tuple[str, ...] | None:
    return tuple(grounding.web_search_queries or ()) if grounding else None


def _audio_of(content: types.LiveServerContent) -> tuple[bytes, ...]:
    parts = content.model_turn.parts or [] if content.model_turn else []
    return tuple(p.inline_data.data for p in parts if p.inline_data and p.inline_data.data)


def _transcripts_of(content: types.LiveServerContent) -> tuple[Transcript, ...]:
    pairs: tuple[tuple[Speaker, types.Transcription | None], ...] = (
        ("user", content.input_transcription),
        ("model", content.output_transcription),
    )
    return tuple(Transcript(who, said.text) for who, said in pairs if said and said.text)


def _calls_of(
    call: types.LiveServerToolCall | None, problems: list[str]
) -> tuple[ToolRequest, ...]:
    """The function calls of a toolCall; one without an id cannot be answered (the service
    matches answers by id, and refuses others), so it is left out."""
    calls = call.function_calls or [] if call else []
    for call_without_id in [c for c in calls if not c.id]:
        problems.append(
            f"calls {call_without_id.name!r} without an id: ignored, it cannot be answered"
        )
    return tuple(ToolRequest(c.id, c.name or "", dict(c.args or {})) for c in calls if c.id)


#: A protobuf Duration in JSON: seconds with up to 9 decimals and an "s", e.g. "12.5s".
_DURATION = re.compile(r"\d+(\.\d{0,9})?s")


def _go_away_of(go_away: types.LiveServerGoAway | None, problems: list[str]) -> float | None:
    """Seconds until the server closes the connection, if ``go_away`` announces it; a time
    left that cannot be read counts as none left (hand over at once: nothing is sent into a
    socket about to close)."""
    if go_away is None:
        return None
    seconds = _seconds(go_away.time_left)
    if seconds is None:
        problems.append(f"says goAway with a time left of {go_away.time_left!r}: handing over now")
        return 0.0
    return seconds


def _seconds(time_left: str | None) -> float | None:
    """A protobuf Duration as JSON ("12.5s") in seconds; None if it is not one. An absent
    one is 0 s (proto3 leaves out a zero)."""
    if time_left is None:
        return 0.0
    if not _DURATION.fullmatch(time_left):
        return None
    seconds = float(time_left.removesuffix("s"))
    return seconds if math.isfinite(seconds) else None


# -- failures: whether trying again soon can help -------------------------------------
# Transient failures (normal or abnormal closes, internal errors, refused connections,
# timeouts, an unreadable answer to the setup or UNREADABLE_LIMIT unreadable messages in a
# row) reconnect with the resumption handle after a short backoff. Fatal ones (rejected key,
# unknown model, exhausted quota, an untrusted certificate) need a person or time: ERROR, a
# message naming the fix, and a long backoff.

#: Reasons of 1011 closes that retrying soon cannot fix.
_QUOTA_WORDS = ("quota", "exhausted")


def classify(error: BaseException, started: bool = False) -> Failure:
    """Classify an exception raised by connecting to, sending to or receiving from a session
    (``started``: after its setup was accepted).

    Anything else is a bug in pispeaker, not a network or service failure: it is re-raised.
    """
    if isinstance(error, errors.APIError):
        return _close(error.code, str(error.details or ""), started)
    if isinstance(error, websockets.InvalidStatus):
        return _http(error.response.status_code)
    if isinstance(error, ssl.SSLCertVerificationError):
        return Failure(
            Kind.FATAL,
            f"the Live API's TLS certificate is not trusted ({error.verify_message}); "
            "check live.base_url, or set live.ca_file for a private endpoint",
            cause="tls",
        )
    if isinstance(error, TimeoutError):
        return Failure(
            Kind.TRANSIENT, "the Live API did not complete the setup within live.connect_timeout_s"
        )
    if isinstance(error, websockets.ConnectionClosed) and (code := _unanswered_pings(error)):
        return Failure(
            Kind.TRANSIENT,
            f"pings went unanswered for live.ping_timeout_s ({code}: keepalive ping "
            "timeout): the network failed, or the service stalled",
            code,
        )
    if isinstance(error, websockets.ConnectionClosed | OSError):
        return Failure(Kind.TRANSIENT, f"connection failed: {error!r}")
    if isinstance(error, ValueError | TypeError):  # the SDK's answer to a malformed message
        return Failure(Kind.TRANSIENT, f"malformed message from the Live API: {error}")
    raise error


def _unanswered_pings(error: websockets.ConnectionClosed) -> int | None:
    """The close code, if websockets closed the connection itself because pings went
    unanswered (the SDK lets that through as it is while pispeaker sends, instead of as an
    APIError); else None."""
    sent = error.sent
    return sent.code if sent is not None and sent.reason == "keepalive ping timeout" else None


def _close(code: int, reason: str, started: bool) -> Failure:
    if code == 1007 and "api key" in reason.lower():
        return Failure(
            Kind.FATAL,
            f"API key rejected ({reason}); update the gemini-api-key credential and restart",
            code,
            "key",
        )
    if code == 1007:
        return Failure(Kind.FATAL, f"the Live API rejected the request (1007: {reason})", code)
    if code == 1008 and started:  # e.g. "Requested entity was not found" after a tool response
        return Failure(
            Kind.TRANSIENT, f"the Live API ended a working session (1008: {reason})", code
        )
    if code == 1008:
        return Failure(
            Kind.FATAL,
            f"model or feature not available (1008: {reason}); check live.model (known: "
            f"{known_models()}) and live.api_version",
            code,
            "model",
        )
    if code == 1006:  # no close frame: nobody said why
        return Failure(
            Kind.TRANSIENT,
            f"the connection dropped (1006: {reason or 'no close frame'}): the network "
            "failed, or pings went unanswered for live.ping_timeout_s",
            code,
        )
    if any(word in reason.lower() for word in _QUOTA_WORDS):
        return Failure(
            Kind.FATAL, f"quota exhausted ({reason}); wait or raise the quota", code, "quota"
        )
    return Failure(Kind.TRANSIENT, f"session closed ({code}: {reason or 'no reason'})", code)


def _http(status: int) -> Failure:
    if status == 429:
        return Failure(
            Kind.FATAL, "quota exhausted (HTTP 429); wait or raise the quota", status, "quota"
        )
    if status in (401, 403):
        return Failure(
            Kind.FATAL, f"API key refused (HTTP {status}); update the credential", status, "key"
        )
    if status >= 500:
        return Failure(Kind.TRANSIENT, f"the Live API is unavailable (HTTP {status})", status)
    return Failure(
        Kind.FATAL,
        f"the Live API endpoint refused the connection (HTTP {status}); check live.base_url "
        "and live.api_version",
        status,
    )
