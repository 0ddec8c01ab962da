"""pispeaker: a Raspberry Pi smart speaker that talks through the Gemini Live API."""

__version__ = "0.1.0"
