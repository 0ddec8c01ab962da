"""The button and the status LEDs.

``looks`` (LED patterns and colours per state) and ``gestures`` (press and hold from raw
levels) are pure; ``gpio`` is the only module that imports gpiozero.
"""
