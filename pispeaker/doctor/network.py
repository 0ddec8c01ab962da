"""Reaching the Live API's host, step by step, so that each failure has its own name: the
name does not resolve (DNS), nobody listens (refused), no answer (timeout), the certificate is
not trusted (TLS), or this machine's clock is wrong, which also fails TLS: a Pi has no
real-time clock, and until it synchronises it lives in the past.

The request is a plain ``GET /`` that carries no key; only its ``Date`` header is read.
"""

import email.utils
import http.client
import socket
import ssl
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit

from pispeaker.doctor.results import Result, ok, problem, skipped, warning
from pispeaker.doctor.unit import Run, ask

#: A clock further than this from the server's is wrong (the Date header has 1 s steps).
CLOCK_TOLERANCE_S = 60.0
#: What OpenSSL says of a certificate outside its validity period: by this machine's clock.
TIME_MESSAGES = ("certificate is not yet valid", "certificate has expired")
CLOCK_NEXT_STEP = (
    "let the clock synchronise: check `timedatectl` (NTP service active) and that NTP "
    "(UDP port 123) is reachable; without network time, set it by hand: "
    "sudo date -s '2026-01-31 12:00:00'"
)


@dataclass(frozen=True)
class Endpoint:
    """Where ``live.base_url`` points."""

    host: str
    port: int
    tls: bool

    @classmethod
    def of(cls, base_url: str) -> "Endpoint":
        parts = urlsplit(base_url)
        tls = parts.scheme == "https"
        return cls(parts.hostname or "", parts.port or (443 if tls else 80), tls)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Reach:
    """What the request found: ``failure`` is "" when the host answered, else one of "dns",
    "refused", "timeout", "unreachable", "tls"; ``server_time`` is the host's clock (epoch
    seconds) when it could be read, even past a TLS failure."""

    failure: str
    reason: str = ""
    server_time: float | None = None


def reach(endpoint: Endpoint, context: ssl.SSLContext | None, timeout_s: float) -> Reach:
    """Ask ``endpoint`` for ``/`` through ``context`` (the one the session would use); on a
    certificate failure, ask again without verifying, for the server's time alone."""
    try:
        return Reach("", server_time=_server_time(endpoint, context, timeout_s))
    except socket.gaierror as error:
        return Reach("dns", error.strerror or str(error))
    except ConnectionRefusedError:
        return Reach("refused", "connection refused")
    except TimeoutError:
        return Reach("timeout", f"no answer within {timeout_s:g} s")
    except ssl.SSLCertVerificationError as error:
        return Reach("tls", error.verify_message or str(error), _unverified_time(endpoint))
    except ssl.SSLError as error:
        return Reach("tls", error.reason or str(error))
    except (OSError, http.client.HTTPException) as error:
        return Reach("unreachable", getattr(error, "strerror", None) or repr(error))


def _server_time(
    endpoint: Endpoint, context: ssl.SSLContext | None, timeout_s: float
) -> float | None:
    connection: http.client.HTTPConnection
    if endpoint.tls:
        connection = http.client.HTTPSConnection(
            endpoint.host, endpoint.port, timeout=timeout_s, context=context
        )
    else:
        connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout_s)
    try:
        connection.request("GET", "/", headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        return http_date(response.getheader("Date"))
    finally:
        connection.close()


def _unverified_time(endpoint: Endpoint) -> float | None:
    """The server's time from a request that trusts any certificate: it sends nothing
    secret and only the Date header is read."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        return _server_time(endpoint, context, 5.0)
    except (OSError, http.client.HTTPException):
        return None


def http_date(value: str | None) -> float | None:
    """An HTTP ``Date`` header as epoch seconds; None if absent or unreadable."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def clock_synchronized(
    run: Run = subprocess.run,
) -> bool | None:
    """Whether systemd says the clock is synchronised (``timedatectl show -p
    NTPSynchronized``); None where it cannot tell (no timedatectl, no systemd)."""
    done = ask(run, ["timedatectl", "show", "-p", "NTPSynchronized", "--value"], 5)
    if done is None:
        return None
    answer = done.stdout.strip()
    if done.returncode != 0 or answer not in ("yes", "no"):
        return None
    return answer == "yes"


# -- verdicts --------------------------------------------------------------------------------


def judge_endpoint(endpoint: Endpoint, found: Reach, clock_wrong: bool) -> Result:
    """The endpoint line; ``clock_wrong``: the clock check found this machine's clock wrong
    (then a certificate "expired" or "not yet valid" is the clock's fault)."""
    name, where = "endpoint", f"{endpoint} (live.base_url)"
    if found.failure == "":
        return ok(name, f"{where} answers{' over TLS' if endpoint.tls else ''}")
    if found.failure == "dns":
        return problem(
            name,
            f"DNS: the name {endpoint.host!r} does not resolve ({found.reason})",
            f"check the network connection and /etc/resolv.conf (try `getent hosts "
            f"{endpoint.host}`), and the host name in live.base_url",
        )
    if found.failure == "refused":
        return problem(
            name,
            f"{where} refused the connection: nothing listens there",
            "check live.base_url (its host and port); for the emulator, start it first",
        )
    if found.failure == "timeout":
        return problem(
            name,
            f"{where} did not answer ({found.reason})",
            "check the network connection, a firewall or a proxy on the way",
        )
    if found.failure == "tls":
        return _tls_problem(endpoint, found, clock_wrong)
    return problem(
        name,
        f"{where} cannot be reached ({found.reason})",
        "check the network connection (`ip route`, Wi-Fi or cable)",
    )


def _tls_problem(endpoint: Endpoint, found: Reach, clock_wrong: bool) -> Result:
    detail = f"TLS: the certificate of {endpoint} is not trusted ({found.reason})"
    if found.reason in TIME_MESSAGES and clock_wrong:
        return problem("endpoint", detail + ", by this machine's wrong clock", CLOCK_NEXT_STEP)
    return problem(
        "endpoint",
        detail,
        "check live.base_url; a private endpoint (the emulator prints its CA file) or a proxy "
        "that intercepts HTTPS needs its CA certificate in live.ca_file",
    )


def judge_clock(now: float, found: Reach, synchronized: bool | None, host: str) -> Result:
    """The clock line: this machine's time ``now`` against the server's and systemd's sync
    state (None: unknown)."""
    name = "clock"
    sync = {True: "synchronised", False: "not synchronised", None: "sync state unknown"}
    if found.server_time is not None:
        off = now - found.server_time
        if abs(off) > CLOCK_TOLERANCE_S:
            return problem(
                name,
                f"this machine's clock is {_span(abs(off))} {'ahead of' if off > 0 else 'behind'} "
                f"{host}'s ({sync[synchronized]}); TLS certificates fail with a wrong clock",
                CLOCK_NEXT_STEP,
            )
        agrees = f"within {CLOCK_TOLERANCE_S:g} s of {host}'s"
        if synchronized is False:
            return warning(
                name,
                f"not synchronised (yet), but {agrees}",
                "check `timedatectl` (NTP service active)",
            )
        return ok(name, f"{sync[synchronized]}; {agrees}")
    if synchronized is False:
        return warning(
            name,
            "not synchronised (yet), and the server's time could not be read: "
            "after a boot without network time, TLS fails until it is",
            CLOCK_NEXT_STEP,
        )
    if synchronized is None:
        return skipped(name, "cannot tell: no timedatectl here, and no server time to compare")
    return ok(name, "synchronised")


def clock_is_wrong(now: float, found: Reach, synchronized: bool | None) -> bool:
    """Whether the clock is known wrong: off from the server's, or unsynchronised with no
    server time to compare."""
    if found.server_time is not None:
        return abs(now - found.server_time) > CLOCK_TOLERANCE_S
    return synchronized is False


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"
