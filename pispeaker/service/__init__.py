"""pispeaker as a systemd service: ``pispeaker run``.

``systemd.py`` is the only module that imports systemd-python (sd_notify, the journal); every
call is a silent no-op outside systemd. ``status.py`` turns states into the one-line status
``systemctl status`` shows, and ``daemon.py`` runs the speaker: ready, watchdog, reload on
SIGHUP and a clean stop on SIGTERM.
"""
