"""Audio routing: where each microphone chunk goes in the current state (``uplink``), and
the reply audio on its way to the speaker.

Captured audio feeds the pre-roll ring and the wake word on one clock in every state but
MUTED. In a conversation it is cleaned of the speaker's echo (``Ear``), goes to the Live link
where the state allows it (over a reply it is held on the device, and sent from the user's
first sound once they are heard talking), and to the voice activity detector, which tells
the machine when the user talks (the follow-up window, and barge-in over a reply). Reply
audio is played at the set volume, ducked while the machine says so (DUCKED); what was
played is the echo canceller's reference.
"""

import logging
import time
from collections.abc import Callable
from typing import Protocol

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count, tone
from pispeaker.audio.ports import AudioSink, AudioSource, PrerollRing
from pispeaker.audio.volume import Volume
from pispeaker.conversation.core import Change, Conversation
from pispeaker.conversation.hearing import Ear, VoiceActivity
from pispeaker.conversation.tasks import TaskOwner
from pispeaker.live.port import Link
from pispeaker.states import CONVERSATION, PLAYING, Event, State, Uplink, uplink
from pispeaker.wake.detector import Detection
from pispeaker.wake.listener import WakeListener

log = logging.getLogger(__name__)

#: A reply whose audio has played out and whose turn has not ended this long after is
#: stalled: the service stopped answering with its socket open (it sends turnComplete as
#: soon as generation ends, and tool calls come before their pause, not in it).
REPLY_STALL_S = 10.0
#: Seconds of played audio kept as a record of what the speaker said.
REFERENCE_S = 2.0
#: The gain of a ducked reply: 20 dB down, quiet enough to hear the user over it.
DUCKED_GAIN = 0.1
#: Microphone audio kept while a reply plays (HELD): longer than the voice detector takes to
#: be sure of speech or give up on a sound (hearing.GIVE_UP_S).
HELD_S = 2.0
#: What is sent with the user's words over a reply: from this long before their first sound.
BEFORE_ONSET_S = 0.1
#: Microphone chunks delivered together outside a conversation, where only the wake word
#: listens: one 80 ms frame of its audio per wake-up of the event loop instead of four (in a
#: conversation each chunk goes on as soon as it is captured).
IDLE_BATCH = 4


class WakeTap(Protocol):
    """Hears what the wake word hears, on its clock (the false-wake journal)."""

    def hear(self, chunk: bytes) -> None:
        """``chunk`` went to the wake-word listener."""

    def gap(self) -> None:
        """The microphone was away: what came before does not join what comes next."""


class AudioRouter:
    """Routes captured audio by state and plays reply audio; one per controller.

    ``reply_observers`` are told, once per reply, when its first sample is heard
    (``time.monotonic()`` seconds): the end of the wait the user hears.
    """

    def __init__(
        self,
        conversation: Conversation,
        tasks: TaskOwner,
        link: Link,
        sink: AudioSink,
        volume: Volume,
        wake: WakeListener | None,
        ear: Ear,
        voice: VoiceActivity,
    ) -> None:
        self._conversation = conversation
        self._tasks = tasks
        self._link = link
        self._sink = sink
        self._volume = volume
        self._wake = wake
        self.ear = ear
        self.voice = voice
        # What the microphone heard lately, on the same clock as the wake-word detector.
        self.preroll = PrerollRing(conversation.policy.preroll_s)
        self.held = PrerollRing(HELD_S)
        self.reference = PrerollRing(REFERENCE_S, OUTPUT_RATE)
        sink.tap = self._played
        self.chunks_heard = 0  # microphone chunks read: capture is alive while this grows
        self._replies_written = 0  # pieces of reply audio given to the speaker
        self.reply_observers: list[Callable[[float], None]] = []
        self._reply_heard = False  # the playing reply's first sample has been heard
        self._source: AudioSource | None = None
        #: Told of every chunk the wake word hears, if set (None: no cost at all).
        self.wake_tap: WakeTap | None = None

    # -- capture ---------------------------------------------------------------------------

    async def pump(self, source: AudioSource) -> None:
        """Route every chunk ``source`` delivers, until it fails (DeviceLostError)."""
        self._source = source
        self._pace(self._conversation.status.state)
        while True:
            chunk = await source.read()
            self.chunks_heard += 1
            self.hear(chunk, source.captured_at)

    def hear(self, chunk: bytes, captured_at: float) -> None:
        """Route one microphone chunk, whose last sample was captured at ``captured_at``, by
        the current state."""
        state = self._conversation.status.state
        mode = uplink(state, self.ear.hears_over_reply)
        if mode is Uplink.DISCARD:
            return
        self.preroll.append(chunk)  # the detector hears every state but MUTED: no warm-up
        if self._wake is not None:
            self._wake.feed(chunk)
            if self.wake_tap is not None:
                self.wake_tap.hear(chunk)
        if state not in CONVERSATION:
            return
        chunk = self.ear.clean(chunk, captured_at)  # in every conversation state
        if mode in (Uplink.BUFFER, Uplink.LIVE):
            self._link.send_audio(chunk)
        elif mode is Uplink.HELD:
            self.held.append(chunk)
        if state is State.LISTENING or mode is Uplink.HELD:
            for event in self.voice.feed(chunk):
                self._conversation.dispatch(event)

    def _pace(self, state: State) -> None:
        """Let the microphone hold chunks back while no chunk is urgent."""
        if self._source is not None:
            self._source.batch = 1 if state in CONVERSATION else IDLE_BATCH

    def send_held(self, _change: Change) -> None:
        """What the user said over the reply, from just before its first sound: the model
        hears all of their words, and nothing of what came before."""
        sound = byte_count(self.voice.sound_s + BEFORE_ONSET_S, INPUT_RATE)
        self._link.send_audio(self.held.since(self.held.position - sound))

    def heard_gap(self) -> None:
        """The microphone was away: what came before does not join what comes next."""
        self.preroll.clear()
        if self._wake is not None:
            self._wake.reset()
        if self.wake_tap is not None:
            self.wake_tap.gap()

    def send_preroll(self, change: Change) -> None:
        """What the user said between the end of the wake word and now (inference lags
        behind the audio): the session must hear it too, and nothing said before. A wake
        word dispatched without its detection sends the whole pre-roll."""
        detection = change.cause
        assert detection is None or isinstance(detection, Detection)  # with a wake word
        end = byte_count(detection.end_s, INPUT_RATE) if detection else 0
        self._link.send_audio(self.preroll.since(end))

    def on_change(self, change: Change) -> None:
        """Nothing heard while MUTED may be used: the pre-roll is emptied on the way in,
        and the wake word starts afresh on the way out (its audio has a gap). The reply is
        ducked exactly while DUCKED; the voice detector starts afresh with a reply and with
        the user's turn (not from DUCKED to SPEAKING or back: that is the same sound).
        A tool call in the reply is why its audio may pause: no stall then."""
        if change.event is Event.MODEL_TOOL_CALL:
            self._conversation.stop_timer("reply-stall")
        if not change.moved:
            return
        after, before = change.after.state, change.before.state
        self._pace(after)
        self._sink.gain = DUCKED_GAIN if after is State.DUCKED else 1.0
        if not (after in PLAYING and before in PLAYING):
            self.voice.reset()
        if after in PLAYING:
            self.ear.tell_withheld()
        else:
            self._reply_heard = False  # the next audio heard is another reply's
            self.held.clear()  # a reply that ended or was stopped: its sounds were not words
            self._conversation.stop_timer("reply-stall")
        if after not in CONVERSATION:  # what the speaker plays now is nobody's echo to cancel
            self.ear.dropped(time.monotonic())
        if after is State.MUTED:
            self.preroll.clear()
        elif before is State.MUTED and self._wake is not None:
            self._wake.reset()

    # -- playback --------------------------------------------------------------------------

    def play(self, change: Change) -> None:
        """Play the reply audio that came with MODEL_AUDIO; unless the turn has ended by
        then, REPLY_STALLED ``REPLY_STALL_S`` after it has played."""
        assert isinstance(change.cause, bytes)  # PLAY_AUDIO comes with the audio
        self._sink.write(self._volume.apply(change.cause))
        self._replies_written += 1
        self._conversation.in_conversation("reply-stall", self._stall())

    def flush(self, _change: Change) -> None:
        """Stop playing at once: queued and device audio are dropped, and the wait for the
        reply's end with them."""
        self._tasks.cancel("reply-done")
        self._conversation.stop_timer("reply-stall")
        self._sink.flush()
        self.ear.dropped(time.monotonic())

    def await_playback(self, _change: Change) -> None:
        """REPLY_DONE once the last sample of reply audio has played: that of this turn, and
        of any turn whose audio comes while it plays (the service may end a turn before its
        audio has played, and the next may follow at once)."""
        self._conversation.stop_timer("reply-stall")
        self._tasks.start("reply-done", self._reply_done())

    def _played(self, pcm: bytes, heard_at: float) -> None:
        """``pcm`` went to the speaker, to be heard at ``heard_at``: the echo canceller's
        reference while a reply plays (an earcon's echo is short; cancelling it would cost
        the user's first words); the first of a reply is told to ``reply_observers``."""
        self.reference.append(pcm)
        if self._conversation.status.state in PLAYING:
            self.ear.played(pcm, heard_at)
            if not self._reply_heard:
                self._reply_heard = True
                for observer in self.reply_observers:
                    observer(heard_at)

    async def _stall(self) -> None:
        await self._sink.drain()
        await self._conversation.sleep(REPLY_STALL_S)
        log.warning(
            "the reply stopped coming: its turn did not end within %g s of its last audio "
            "playing; reconnecting",
            REPLY_STALL_S,
        )
        self._conversation.dispatch(Event.REPLY_STALLED)

    async def _reply_done(self) -> None:
        written = -1
        while written != self._replies_written:  # more came while the speaker drained
            written = self._replies_written
            await self._sink.drain()
        self._conversation.dispatch(Event.REPLY_DONE)

    def earcon(self, frequency_hz: float) -> None:
        """A short tone, if the owner wants earcons."""
        if self._conversation.policy.earcons:
            self._sink.write(self._volume.apply(tone(frequency_hz, 0.12, OUTPUT_RATE, 0.15)))
