"""The Gemini Live API side of pispeaker: the only package that imports google.genai."""
