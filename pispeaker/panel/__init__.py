"""The button and the LEDs (the gpiozero adapter arrives with the panel work)."""
