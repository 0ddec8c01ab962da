"""On-device wake-word detection (openWakeWord): nothing leaves the device until it fires."""
