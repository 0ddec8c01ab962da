"""Audio formats, PCM helpers and (later) the capture/playback ports and adapters."""
