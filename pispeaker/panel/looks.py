"""How each state looks on the LEDs: one distinct look per state, at a glance."""

from pispeaker.states import State

#: Colour and pattern per state, as an RGB LED shows them (single LEDs map patterns only).
LOOKS: dict[State, str] = {
    State.IDLE: "off",
    State.CONNECTING: "blue, blinking",
    State.LISTENING: "blue, solid",
    State.THINKING: "cyan, pulsing",
    State.SPEAKING: "green, breathing",
    State.INTERRUPTED: "amber, quick flash",
    State.MUTED: "red, solid",
    State.ERROR: "red, blinking",
}
