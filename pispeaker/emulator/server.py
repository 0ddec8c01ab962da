"""The Live API emulator: a loopback TLS WebSocket server the real google-genai SDK talks to.

Use it as an async context manager::

    async with LiveEmulator(EmulatorOptions(pace=0)) as emulator:
        emulator.script.push(Reply(audio="tone", seconds=0.5))
        client = genai.Client(api_key=emulator.api_key, http_options=HttpOptions(
            base_url=emulator.base_url, api_version="v1beta",
            async_client_args={"ssl": client_context(emulator.ca_file)}))

Tests and benchmarks script it (``script``), inspect it (``timeline``, ``store``) and break
it on demand (``inject``, ``reject_upgrades``, ``EmulatorOptions.faults``, and frames sent
as-is: ``send_raw``, ``send_raw_first``).
"""

import asyncio
import http
import re
import tempfile
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from pispeaker.emulator.certs import TlsMaterial, issue_tls
from pispeaker.emulator.channel import Channel, Shared
from pispeaker.emulator.connection import LiveConnection
from pispeaker.emulator.handshake import Handshake
from pispeaker.emulator.options import EmulatorOptions, Fault
from pispeaker.emulator.script import Script
from pispeaker.emulator.store import SessionStore
from pispeaker.emulator.timeline import Timeline
from pispeaker.emulator.websocket import ControlledConnection

PATH = re.compile(
    r"^/+ws/google\.ai\.generativelanguage\.(?P<version>v1alpha|v1beta|v1)"
    r"\.GenerativeService\.(?P<method>BidiGenerateContent(?:Constrained)?)$"
)


def parse_handshake(request: Request, number: int) -> Handshake | None:
    """The API version, method and credential of an upgrade request; None for a wrong path.

    The credential comes from ``Authorization: Token``, ``x-goog-api-key``, or the query
    parameters ``access_token`` / ``key``, as the Python and JavaScript SDKs send them.
    """
    # Not urlsplit: it would read the "//ws" of a double-slash path as a host name.
    path, _, query_string = request.path.partition("?")
    match = PATH.match(path)
    if match is None:
        return None
    query = parse_qs(query_string)
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Token "):
        credential: str | None = authorization.removeprefix("Token ").strip()
    else:
        in_query = query.get("access_token") or query.get("key") or []
        credential = request.headers.get("x-goog-api-key") or next(iter(in_query), None)
    return Handshake(number, match["version"], match["method"], credential)


class LiveEmulator:
    """A running emulator; start with ``async with`` or ``start()``/``stop()``."""

    def __init__(self, options: EmulatorOptions | None = None, state_dir: Path | None = None):
        self.options = options or EmulatorOptions()
        self.script = Script(self.options.default_reply)
        self.timeline = Timeline(self.options.timeline_path)
        self.store = SessionStore(self.options.resumption_ttl_s)
        self.connections: dict[int, LiveConnection] = {}
        self._state_dir = state_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._tls: TlsMaterial | None = None
        self._server: Server | None = None
        self._accepted = 0
        self._upgrade_status: int | None = None
        self._first_frames: list[bytes | str] = []
        self._shared = Shared(self.options, self.script, self.store, self.timeline)

    async def __aenter__(self) -> "LiveEmulator":
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Make the TLS material and start listening."""
        state_dir = self._state_dir
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pispeaker-emulator-")
            state_dir = Path(self._tmp.name)
        self._tls = issue_tls(state_dir)
        self._server = await serve(
            self._serve_connection,
            self.options.host,
            self.options.port,
            ssl=self._tls.server_context,
            process_request=self._check_request,
            create_connection=ControlledConnection,
            ping_interval=None,  # the service does not ping clients; clients ping it
        )

    async def stop(self) -> None:
        """Close every connection (1001 going away) and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.timeline.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        assert self._server is not None, "start() the emulator first"
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def base_url(self) -> str:
        """What to give the SDK as ``HttpOptions.base_url`` (``live.base_url``)."""
        host = f"[{self.options.host}]" if ":" in self.options.host else self.options.host
        return f"https://{host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients must trust (``live.ca_file``)."""
        assert self._tls is not None, "start() the emulator first"
        return self._tls.ca_file

    @property
    def api_key(self) -> str:
        """A key the emulator accepts."""
        return sorted(self.options.api_keys)[0]

    async def inject(self, fault: Fault, connection: int | None = None) -> None:
        """Produce ``fault`` now on connection number ``connection``, or on every open one."""
        targets = [c for n, c in self.connections.items() if connection in (None, n)]
        await asyncio.gather(*(target.apply(fault) for target in targets))

    async def send_raw(self, frame: bytes | str, connection: int | None = None) -> int:
        """Send ``frame`` as-is (bytes in a binary frame, str in a text frame) on connection
        number ``connection``, or on every open one; how many took it (a closed one did not)."""
        targets = [c for n, c in list(self.connections.items()) if connection in (None, n)]
        return sum([await _send_raw(target.channel, frame) for target in targets])

    def send_raw_first(self, frame: bytes | str) -> None:
        """Send ``frame`` as-is on the next connection, before its setup is read: the SDK
        takes it for the answer to its setup, and ``setupComplete`` comes second."""
        self._first_frames.append(frame)

    def reject_upgrades(self, status: int | None) -> None:
        """Answer new upgrade requests with HTTP ``status`` (e.g. 429), or accept them (None)."""
        self._upgrade_status = status

    def _check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if parse_handshake(request, 0) is None:
            return ws.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
        if self._upgrade_status is not None:
            status = http.HTTPStatus(self._upgrade_status)
            return ws.respond(status, f"{status.phrase}\n")
        return None

    async def _serve_connection(self, ws: ServerConnection) -> None:
        assert isinstance(ws, ControlledConnection)
        assert ws.request is not None
        self._accepted += 1
        handshake = parse_handshake(ws.request, self._accepted)
        assert handshake is not None  # _check_request refused other paths
        connection = LiveConnection(ws, handshake, self._shared)
        self.connections[handshake.number] = connection
        first, self._first_frames = self._first_frames, []
        try:
            for frame in first:
                await _send_raw(connection.channel, frame)
            await connection.serve()
        finally:
            del self.connections[handshake.number]


async def _send_raw(channel: Channel, frame: bytes | str) -> int:
    """Send one frame as-is and record it ("raw": its size and type); 0 if the socket closed."""
    try:
        await channel.ws.send(frame)
    except ConnectionClosed:
        return 0  # the client left first; the connection records its own end
    channel.record("raw", size=len(frame), binary=isinstance(frame, bytes))
    return 1
