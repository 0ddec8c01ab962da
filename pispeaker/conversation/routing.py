"""Audio routing: where each microphone chunk goes in the current state (``uplink``), and
the reply audio on its way to the speaker.

Captured audio feeds the pre-roll ring and the wake word on one clock in every state but
MUTED, and the Live link where the state allows it. Reply audio is played at the set volume;
what was played is kept as the echo canceller's reference.
"""

from pispeaker.audio.pcm import INPUT_RATE, OUTPUT_RATE, byte_count, duration_s, rms_dbfs, tone
from pispeaker.audio.ports import AudioSink, AudioSource, PrerollRing
from pispeaker.audio.volume import Volume
from pispeaker.conversation.core import Change, Conversation
from pispeaker.conversation.tasks import TaskOwner
from pispeaker.live.port import Link
from pispeaker.states import Event, State, Uplink, uplink
from pispeaker.wake.detector import Detection
from pispeaker.wake.listener import WakeListener

#: Microphone level (dBFS) that counts as the user talking, for the follow-up window.
SPEECH_DBFS = -40.0
#: Seconds of played audio kept as the echo canceller's reference signal.
REFERENCE_S = 2.0


class SpeechBursts:
    """Turns microphone levels into the user starting (USER_SPEECH) and stopping
    (USER_SILENCE, after ``quiet_s`` below the level) to talk: events once per burst, never
    per chunk. Time is the audio's own, so it does not depend on how fast chunks arrive."""

    def __init__(self, threshold_dbfs: float = SPEECH_DBFS, quiet_s: float = 0.3) -> None:
        self.threshold_dbfs = threshold_dbfs
        self.quiet_s = quiet_s
        self.talking = False
        self._quiet_s = 0.0  # since the last loud chunk

    def feed(self, chunk: bytes) -> Event | None:
        """USER_SPEECH when this chunk starts a burst, USER_SILENCE when it ends one."""
        if rms_dbfs(chunk) > self.threshold_dbfs:
            self._quiet_s = 0.0
            if self.talking:
                return None
            self.talking = True
            return Event.USER_SPEECH
        if not self.talking:
            return None
        self._quiet_s += duration_s(chunk, INPUT_RATE)
        if self._quiet_s < self.quiet_s:
            return None
        self.talking = False
        return Event.USER_SILENCE

    def reset(self) -> None:
        """Forget the burst in progress."""
        self.talking = False


class AudioRouter:
    """Routes captured audio by state and plays reply audio; one per controller."""

    def __init__(
        self,
        conversation: Conversation,
        tasks: TaskOwner,
        link: Link,
        sink: AudioSink,
        volume: Volume,
        wake: WakeListener | None,
    ) -> None:
        self._conversation = conversation
        self._tasks = tasks
        self._link = link
        self._sink = sink
        self._volume = volume
        self._wake = wake
        self._voice_barge_in = conversation.policy.voice_barge_in
        self._bursts = SpeechBursts()
        # What the microphone heard lately, on the same clock as the wake-word detector.
        self.preroll = PrerollRing(conversation.policy.preroll_s)
        self.reference = PrerollRing(REFERENCE_S, OUTPUT_RATE)
        sink.tap = self.reference.append  # what was played: the echo canceller's reference
        self.chunks_heard = 0  # microphone chunks read: capture is alive while this grows

    # -- capture ---------------------------------------------------------------------------

    async def pump(self, source: AudioSource) -> None:
        """Route every chunk ``source`` delivers, until it fails (DeviceLostError)."""
        while True:
            chunk = await source.read()
            self.chunks_heard += 1
            self.hear(chunk)

    def hear(self, chunk: bytes) -> None:
        """Route one microphone chunk by the current state."""
        state = self._conversation.status.state
        mode = uplink(state, self._voice_barge_in)
        if mode is Uplink.DISCARD:
            return
        self.preroll.append(chunk)  # the detector hears every state but MUTED: no warm-up
        if self._wake is not None:
            self._wake.feed(chunk)
        if mode in (Uplink.BUFFER, Uplink.LIVE):
            self._link.send_audio(chunk)
        if state is State.LISTENING and (speech := self._bursts.feed(chunk)):
            self._conversation.dispatch(speech)

    def heard_gap(self) -> None:
        """The microphone was away: what came before does not join what comes next."""
        self.preroll.clear()
        if self._wake is not None:
            self._wake.reset()

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
        and the wake word starts afresh on the way out (its audio has a gap)."""
        if not change.moved:
            return
        self._bursts.reset()
        if change.after.state is State.MUTED:
            self.preroll.clear()
        elif change.before.state is State.MUTED and self._wake is not None:
            self._wake.reset()

    # -- playback --------------------------------------------------------------------------

    def play(self, change: Change) -> None:
        """Play the reply audio that came with MODEL_AUDIO."""
        assert isinstance(change.cause, bytes)  # PLAY_AUDIO comes with the audio
        self._sink.write(self._volume.apply(change.cause))

    def flush(self, _change: Change) -> None:
        """Stop playing at once: queued and device audio are dropped, and the wait for the
        reply's end with them."""
        self._tasks.cancel("reply-done")
        self._sink.flush()

    def await_playback(self, _change: Change) -> None:
        """REPLY_DONE once the last queued sample has played."""
        self._tasks.start("reply-done", self._reply_done())

    async def _reply_done(self) -> None:
        await self._sink.drain()
        self._conversation.dispatch(Event.REPLY_DONE)

    def earcon(self, frequency_hz: float) -> None:
        """A short tone, if the owner wants earcons."""
        if self._conversation.policy.earcons:
            self._sink.write(self._volume.apply(tone(frequency_hz, 0.12, OUTPUT_RATE, 0.15)))
