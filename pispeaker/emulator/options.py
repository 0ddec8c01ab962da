"""How the emulated service behaves, and the failures it can produce on demand."""

import enum
from dataclasses import dataclass, field
from pathlib import Path

from pispeaker.emulator.script import Reply


class Fault(enum.Enum):
    """Failures the emulator can produce on demand, each as the real service shows it."""

    INTERNAL_ERROR = "internal-error"  # close 1011 "Internal error encountered."
    UNAVAILABLE = "unavailable"  # close 1011 "The service is currently unavailable."
    QUOTA = "quota"  # close 1011 "You exceeded your current quota, ..."
    NORMAL_CLOSE = "normal-close"  # close 1000 with an empty reason
    NOT_FOUND = (
        "not-found"  # close 1008 "Requested entity was not found." (seen after tool responses)
    )
    DROP = "drop"  # abrupt TCP drop: no close frame (the SDK reports 1006)
    MALFORMED = "malformed"  # a frame that is not JSON
    UNKNOWN_ONLY = "unknown-only"  # a message with only an unknown top-level key
    DEADLINE = "deadline"  # close 1011 "Deadline expired ..." with no goAway before it
    STALL = "stall"  # the service sends nothing more; the socket stays open (pongs too)
    GO_AWAY = "go-away"  # the connection lifetime ends now: goAway, then 1011 after the lead
    SLOW_PONGS = "slow-pongs"  # answer keepalive pings late
    NO_PONGS = "no-pongs"  # never answer keepalive pings


@dataclass(frozen=True)
class ScheduledFault:
    """Apply ``fault`` ``at_s`` seconds after setupComplete on connection number ``connection``
    (1-based, in accept order), or on every connection when it is None."""

    fault: Fault
    at_s: float
    connection: int | None = 1


#: Live models the emulator serves (Nov 2026; see reference/live-api.md section 11).
DEFAULT_MODELS = frozenset(
    {
        "gemini-3.8-live",
        "gemini-3.8-live-extended-thinking",
        "gemini-3.1-flash-live-preview",
        "gemini-2.5-flash-native-audio-preview-12-2025",
        "gemini-2.5-flash-native-audio-preview-09-2025",
        "gemini-2.5-flash-native-audio-latest",
    }
)
DEFAULT_API_KEY = "emulator-key"


@dataclass(frozen=True)
class EmulatorOptions:
    """How the emulated service behaves. Times are seconds unless named otherwise.

    ``pace`` scales reply delivery: 1.0 sends audio chunks in real time (as playback would
    consume them), 0 as fast as possible (as the real service generates). ``playback_hold``
    scales how long turnComplete waits after the first chunk for the client's playback to
    end (1.0 real time, as the real service assumes; 0 not at all); barge-in is possible
    until then. ``connection_lifetime_s`` None means connections
    live forever; otherwise ``goAway`` comes ``go_away_lead_s`` before the 1011 close.
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_keys: frozenset[str] = frozenset({DEFAULT_API_KEY})
    models: frozenset[str] = DEFAULT_MODELS
    pace: float = 1.0
    playback_hold: float = 1.0
    response_latency_s: float = 0.3
    connection_lifetime_s: float | None = None
    go_away_lead_s: float = 50.0
    default_silence_ms: int = 500
    resumption_ttl_s: float = 7200.0
    reject_media_chunks: bool = True
    slow_pong_s: float = 30.0
    faults: tuple[ScheduledFault, ...] = ()
    #: The key's quota is used up: every setup with a valid key is closed with 1011 and the
    #: quota reason, as the service refuses one over the free tier's limits.
    quota_exhausted: bool = False
    #: Connections (by number, 1-based) whose setup is read but never answered.
    unanswered_setups: frozenset[int] = frozenset()
    default_reply: Reply = field(default_factory=Reply)
    timeline_path: Path | None = None
