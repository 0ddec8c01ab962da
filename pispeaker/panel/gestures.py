"""What the user did with the button, from raw levels and times. Pure: no GPIO, no clock.

The recogniser is fed every raw level seen (from edge callbacks and from polling, so the same
level may arrive twice, and late) and ticked regularly. A level counts only once it has been
stable for ``debounce_s``, so contact bounce is ignored. A press held for ``hold_s`` is a HOLD,
reported at once while still held (mute must respond without waiting for the release); a
shorter press is a PRESS, reported when released. A hold is therefore never also a press.
"""

import enum


class Gesture(enum.Enum):
    """A button gesture (the controller maps PRESS to Event.BUTTON_PRESS and HOLD to
    Event.BUTTON_HOLD)."""

    PRESS = "press"  # pressed and released before hold_s
    HOLD = "hold"  # held for hold_s: the mute toggle


class GestureRecognizer:
    """Turns raw button levels into gestures.

    Times are seconds on any monotonic clock. A time earlier than one already seen (an edge
    callback delivered after a later poll) is taken as the latest time seen.
    """

    def __init__(self, hold_s: float, debounce_s: float) -> None:
        self.hold_s = hold_s
        self.debounce_s = debounce_s
        self._now = float("-inf")
        self._stable = False  # the debounced level: True while pressed
        self._raw = False  # the last raw level seen
        self._raw_since = float("-inf")  # when the raw level last changed
        self._pressed_at = 0.0  # when the current press began (its first stable contact)
        self._held = False  # HOLD already reported for the current press

    @property
    def pressed(self) -> bool:
        """The debounced level: True while the button counts as pressed."""
        return self._stable

    def level(self, pressed: bool, now: float) -> list[Gesture]:
        """Record the raw level ``pressed`` seen at ``now``; returns the gestures completed.
        Repeating a level already seen changes nothing."""
        gestures = self.tick(now)  # the previous level held until now: let it count first
        if pressed != self._raw:
            self._raw, self._raw_since = pressed, self._now
            gestures += self.tick(now)
        return gestures

    def tick(self, now: float) -> list[Gesture]:
        """Let time pass until ``now``; returns the gestures completed (a HOLD while held,
        a PRESS once a short press's release is stable)."""
        self._now = max(self._now, now)
        gestures: list[Gesture] = []
        if self._raw != self._stable and self._now - self._raw_since >= self.debounce_s:
            gestures += self._settle()
        if self._stable and not self._held and self._press_length() >= self.hold_s:
            self._held = True
            gestures.append(Gesture.HOLD)
        return gestures

    def _settle(self) -> list[Gesture]:
        """The raw level has been stable long enough: it becomes the debounced level."""
        self._stable = self._raw
        if self._stable:
            self._pressed_at, self._held = self._raw_since, False
            return []
        return [] if self._held else [Gesture.PRESS]

    def _press_length(self) -> float:
        """How long the current press has lasted: until now, or until a release that is
        still settling (a bounce back to pressed restarts nothing)."""
        end = self._now if self._raw else self._raw_since
        return end - self._pressed_at
