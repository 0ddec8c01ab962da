"""The only systemd-python importer: sd_notify messages and logging to the journal.

Outside systemd (no ``$NOTIFY_SOCKET``, stderr not the journal) every notification is a
silent no-op and logs go to stderr: the journal's own handler would drop them unseen.
"""

import logging
import os
import time
from collections.abc import Callable, Mapping

from systemd import daemon, journal

#: The identifier journal lines carry (``journalctl -t pispeaker``).
IDENTIFIER = "pispeaker"


class Notifier:
    """Tells the service manager how the daemon is (sd_notify(3)); no-op outside systemd."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.watchdog_s = _watchdog_s(environ)

    def ready(self, status: str) -> None:
        """Started (or reloaded): ``systemctl start`` returns; ``status`` says what it does."""
        self._send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """What the daemon is doing now, in one line for ``systemctl status``."""
        self._send(f"STATUS={status}")

    def reloading(self) -> None:
        """A reload began; ``ready`` ends it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=Reloading the configuration")

    def stopping(self) -> None:
        """A clean stop began."""
        self._send("STOPPING=1", "STATUS=Stopping")

    def watchdog(self) -> None:
        """Alive: the watchdog timer starts again."""
        self._send("WATCHDOG=1")

    @staticmethod
    def _send(*fields: str) -> None:
        # One line per field: a newline would end the field, so each (e.g. a multi-line
        # error in a status) becomes one line with its runs of whitespace collapsed.
        daemon.notify("\n".join(" ".join(field.split()) for field in fields))


def _watchdog_s(environ: Mapping[str, str]) -> float | None:
    """The watchdog timeout systemd set for this process, in seconds (None if none)."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000


def stderr_is_journal(environ: Mapping[str, str]) -> bool:
    """Whether systemd connected stderr to the journal ($JOURNAL_STREAM names its device and
    inode, see systemd.exec(5)); a redirected stderr of a child process does not count."""
    stream = environ.get("JOURNAL_STREAM", "")
    try:
        status = os.fstat(2)
    except OSError:
        return False
    return stream == f"{status.st_dev}:{status.st_ino}"


def journal_handler(fields: Callable[[], Mapping[str, str]]) -> logging.Handler:
    """A handler writing to the journal, each record with ``fields()`` (upper-case names,
    e.g. STATE and SESSION) and EVENT when the record carries an ``event`` attribute."""
    handler: logging.Handler = journal.JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def add_fields(record: logging.LogRecord) -> bool:
        record.__dict__.update(fields())
        event = getattr(record, "event", None)
        if event is not None:
            record.__dict__["EVENT"] = str(event)
        return True

    handler.addFilter(add_fields)
    return handler
