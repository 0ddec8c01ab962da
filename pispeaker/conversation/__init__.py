"""The conversation core, one job per module, none of them importing an outside library.

- ``core``: drives the pure state machine (``pispeaker.states``), owns its timers and tells
  observers what changed, after the effects are done;
- ``routing``: where microphone audio goes in each state, and the reply audio played;
- ``devices``: keeps the microphone and the speaker open, reopening a lost one with backoff;
- ``session``: the Live link opened, closed and reopened, its reports made events;
- ``toolrunner``: runs the model's tool calls and answers them;
- ``tasks``: the owner of every task they start;
- ``history``: a bounded record of what happened, for the bench and the tests.

``pispeaker.controller`` puts them together.
"""
