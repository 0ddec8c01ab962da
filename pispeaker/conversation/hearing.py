"""The speaker's ear: what the microphone hears, with the speaker's own voice taken out.

- ``VoiceActivity`` turns microphone chunks into the user starting and stopping to talk, in
  two stages: a level gate hears any sound at once (SOUND_ONSET: a reply ducks), and a voice
  model confirms that the sound is speech (USER_SPEECH: a reply stops) or gives up on it
  (SOUND_GONE: a cough, a door; the reply comes back).
- ``Ear`` runs the echo canceller on captured audio during a conversation, feeds it what the
  speaker played, and says whether the microphone may be sent while the reply plays
  (``hears_over_reply``), by the owner's ``conversation.duplex``.

Both work on the audio's own clock (chunk durations), never on how fast chunks arrive.
"""

import logging
from collections.abc import Callable

import numpy as np

from pispeaker.audio.pcm import FULL_SCALE, INPUT_RATE, SILENCE_DBFS, duration_s, to_samples
from pispeaker.audio.ports import Canceller, VoiceModel
from pispeaker.conversation.core import Duplex
from pispeaker.errors import EchoCancellerError
from pispeaker.states import Event

log = logging.getLogger(__name__)

#: Level (dBFS) of a chunk that counts as a sound, with a voice model to judge it: as low
#: as the server's own voice detection hears (so the local ear is never the slower one).
SOUND_DBFS = -45.0
#: Without a voice model the level alone says speech: as loud as a voice near the microphone.
SPEECH_DBFS = -40.0
#: Speech probability at which a chunk counts as voiced, and below which speech has ended.
#: Voiced is lower than Silero's own 0.5 for clean audio: over a reply the canceller takes
#: some of the user's voice with the echo (its suppressor errs towards echo), and on the
#: echo bench no cough, knock or echo residual reached 0.3 for CONFIRM_S.
VOICED_P, RELEASE_P = 0.3, 0.15
#: Seconds of voiced audio in a sound that make it speech (a cough rarely reaches it).
CONFIRM_S = 0.3
#: Seconds of a sound without enough voice before it is taken for noise, not the user.
GIVE_UP_S = 1.2
#: Seconds of quiet that end a sound or speech: longer than the pause between the words of
#: one utterance ("no, stop"), which is then judged as one sound.
QUIET_S = 0.4
#: Seconds of quiet that end a sound none of which was voiced (a click, a cough, what is
#: left of the echo at a syllable of the reply): a reply ducked by it comes back at once,
#: not after a pause between words.
UNVOICED_QUIET_S = 0.1
#: Seconds the microphone may hear the speaker after audio went to it: the longest lead of
#: the reference over its echo (the device's buffer and the room) and a reverberation tail.
ECHO_TAIL_S = 0.6
#: Why the microphone is withheld before the canceller has learnt the room.
CONVERGING = (
    "the echo canceller is still learning this room's echo: "
    "the microphone is withheld while the speaker talks (the wake word and button interrupt)"
)


class VoiceActivity:
    """The user starting and stopping to talk, from one microphone chunk at a time.

    Events, each once per sound: SOUND_ONSET when a chunk passes the level gate; then
    USER_SPEECH once ``confirm_s`` of it was voiced, or SOUND_GONE when it ended or lasted
    ``give_up_s`` without (noise: a voiced chunk while it lasts is another SOUND_ONSET, judged
    afresh). A sound ends after ``quiet_s`` of quiet, or UNVOICED_QUIET_S if none of it was
    voiced; USER_SILENCE when speech has been quiet for ``quiet_s``. Without a voice model
    every sound is speech at once, USER_SPEECH without an onset (the level gate alone, as
    before there was a model).
    """

    def __init__(
        self,
        voice: VoiceModel | None,
        threshold_dbfs: float | None = None,
        confirm_s: float = CONFIRM_S,
        give_up_s: float = GIVE_UP_S,
        quiet_s: float = QUIET_S,
    ) -> None:
        self.voice = voice
        self.threshold_dbfs = threshold_dbfs or (SOUND_DBFS if voice else SPEECH_DBFS)
        self.confirm_s, self.give_up_s, self.quiet_s = confirm_s, give_up_s, quiet_s
        self._unvoiced_quiet_s = min(quiet_s, UNVOICED_QUIET_S)
        self.sound = False  # a sound is going on (onset told)
        self.talking = False  # it is speech (USER_SPEECH told)
        self._noise = False  # it lasted too long without voice (SOUND_GONE told)
        self._sound_s = self._voiced_s = self._quiet_s = 0.0

    def feed(self, chunk: bytes) -> list[Event]:
        """The events ``chunk`` brings, in order (usually none)."""
        seconds = duration_s(chunk, INPUT_RATE)
        loud = louder_than(chunk, self.threshold_dbfs)
        if self.voice is not None and loud and not self.sound:
            self.voice.reset()  # each sound is judged from its own start
        probability = self._probability(chunk, loud)
        if self.talking:
            return self._while_talking(probability >= RELEASE_P, seconds)
        # Without a model a sound is speech at once: there is nothing to wait for.
        onset = loud and not self.sound and self.voice is not None
        events = [Event.SOUND_ONSET] if onset else []
        self.sound = self.sound or loud
        if not self.sound:
            return events
        if self._noise and probability >= VOICED_P:
            events.append(self._voice_in_noise())
        self._sound_s += seconds
        self._voiced_s += seconds if probability >= VOICED_P else 0.0
        self._quiet_s = 0.0 if loud else self._quiet_s + seconds
        return events + self._judge()

    def _probability(self, chunk: bytes, loud: bool) -> float:
        """How likely ``chunk`` is speech. The model runs only on a sound (most of what a
        microphone hears is quiet, and the model is most of the ear's CPU time); without a
        model, loud is speech."""
        if self.voice is None or not (loud or self.sound):
            return float(loud)
        return self.voice.probability(chunk)

    @property
    def sound_s(self) -> float:
        """Audio seconds of the sound in progress, from the chunk that began it (0 when
        there is none)."""
        return self._sound_s

    def reset(self) -> None:
        """Forget the sound in progress (and the voice model's memory of it)."""
        self.sound = self.talking = self._noise = False
        self._sound_s = self._voiced_s = self._quiet_s = 0.0
        if self.voice is not None:
            self.voice.reset()

    def _voice_in_noise(self) -> Event:
        """A voice in a sound given up on as noise (the echo's residual, a radio): someone
        may be talking over it, so it is a new sound, judged from here (a reply ducks
        again at once, not only once the voice is sure)."""
        self._noise = False
        self._sound_s = self._voiced_s = 0.0
        return Event.SOUND_ONSET

    def _judge(self) -> list[Event]:
        """Speech, noise, or the end of the sound, after a chunk of it."""
        if self._voiced_s >= self.confirm_s or self.voice is None:
            self.talking = True
            return [Event.USER_SPEECH]
        if self._quiet_s >= (self.quiet_s if self._voiced_s else self._unvoiced_quiet_s):
            noise, self._noise = self._noise, False
            self.sound = False
            self._sound_s = self._voiced_s = self._quiet_s = 0.0
            return [] if noise else [Event.SOUND_GONE]
        if self._sound_s >= self.give_up_s and not self._noise:
            self._noise = True
            return [Event.SOUND_GONE]
        return []

    def _while_talking(self, active: bool, seconds: float) -> list[Event]:
        self._quiet_s = 0.0 if active else self._quiet_s + seconds
        if self._quiet_s < self.quiet_s:
            return []
        self.reset()
        return [Event.USER_SILENCE]


def louder_than(pcm: bytes, dbfs: float) -> bool:
    """Whether ``rms_dbfs(pcm) > dbfs``, compared as energies: no mean, no logarithm (this
    runs on every microphone chunk of a conversation)."""
    samples = to_samples(pcm).astype(np.float64)
    energy = float(np.dot(samples, samples))  # exact: a sum of squares of int16 values
    if not energy:
        return dbfs < SILENCE_DBFS
    return energy > len(samples) * (FULL_SCALE * 10 ** (dbfs / 20)) ** 2


class Ear:
    """The echo canceller in the capture path, by the owner's ``duplex`` choice.

    ``played`` takes what the speaker played (the canceller's reference), ``dropped`` that
    the speaker dropped its audio; ``clean`` takes each microphone chunk of a conversation.
    The canceller hears every one of them (it keeps one timeline: AEC3 loses what it learnt
    of a long echo path across a gap in it), but its output is used only while the speaker
    plays and for ECHO_TAIL_S after.
    A canceller that fails is dropped for good: the microphone is then withheld while the
    reply plays, and ``note`` (also given to ``report``, once) says why.
    """

    def __init__(
        self,
        duplex: Duplex,
        canceller: Canceller | None,
        report: Callable[[str], None] = lambda note: None,
    ) -> None:
        self.duplex = duplex
        self.canceller = canceller if duplex.cancels_echo else None
        self._report = report
        self.note: str | None = None
        self._echo_s = 0.0  # audio seconds the microphone may still hear the speaker
        self._told: set[str] = set()
        if duplex.cancels_echo and canceller is None:
            self._withhold("no echo canceller could be loaded")

    @property
    def hears_over_reply(self) -> bool:
        """Whether the microphone may be sent while the reply plays: the echo is cancelled
        by the microphone itself, or by a canceller that has converged on this room."""
        if self.duplex is Duplex.HARDWARE:
            return True
        return self.canceller is not None and self.canceller.converged

    @property
    def withheld_because(self) -> str | None:
        """Why the microphone is withheld while the reply plays, if the owner wanted it
        sent (None when it is sent, or with duplex "off")."""
        if self.hears_over_reply or self.duplex is Duplex.OFF:
            return None
        return self.note or CONVERGING

    def tell_withheld(self) -> None:
        """Log why the microphone is withheld while the reply plays, once per reason."""
        why = self.withheld_because
        if why is not None and why not in self._told:
            self._told.add(why)
            log.info("%s", why)

    def new_device(self) -> None:
        """A microphone or speaker came back (plugged in again, perhaps another one): its
        echo path is new, so the canceller learns it afresh, and until it has the microphone
        is withheld while the reply plays."""
        if self.canceller is not None:
            self.canceller.reset()
            self._echo_s = 0.0

    def played(self, pcm: bytes, heard_at: float) -> None:
        """``pcm`` (24 kHz) went to the speaker; its first sample is heard at ``heard_at``."""
        if self.canceller is not None:
            self.canceller.reference(pcm, heard_at)
            self._echo_s = ECHO_TAIL_S

    def dropped(self, at: float) -> None:
        """The speaker dropped what it held at ``at``: that audio will never be heard."""
        if self.canceller is not None:
            self.canceller.drop(at)

    def clean(self, chunk: bytes, captured_at: float) -> bytes:
        """``chunk`` (its last sample captured at ``captured_at``) without the speaker's
        echo while the speaker may be heard; otherwise as captured, so that the user's voice
        alone goes out untouched (no noise suppression, no added delay)."""
        if self.canceller is None:
            return chunk
        try:
            cleaned = self.canceller.clean(chunk, captured_at)
        except EchoCancellerError as error:
            self.canceller = None
            self._withhold(f"the echo canceller failed ({error})")
            return chunk
        if self._echo_s <= 0.0:
            return chunk
        self._echo_s -= duration_s(chunk, INPUT_RATE)
        return cleaned

    def _withhold(self, why: str) -> None:
        self.note = f"{why}: the microphone is withheld while the speaker talks"
        self._told.add(self.note)
        log.warning("%s", self.note)
        self._report(self.note)
