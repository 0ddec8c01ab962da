"""The emulator's server-side WebSocket: websockets' connection with controllable pongs."""

import asyncio
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode


class ControlledConnection(ServerConnection):
    """A websockets server connection whose keepalive pongs can be delayed or withheld."""

    #: Seconds to hold each pong; 0 answers at once, None never answers.
    pong_delay: float | None = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._late_pongs: set[asyncio.Task[None]] = set()
        send_frame = self.protocol.send_frame

        def send_or_hold(frame: Frame) -> None:
            if frame.opcode is not Opcode.PONG or self.pong_delay == 0:
                send_frame(frame)
            elif self.pong_delay is not None:
                task = asyncio.ensure_future(self._pong_later(bytes(frame.data), self.pong_delay))
                self._late_pongs.add(task)
                task.add_done_callback(self._late_pongs.discard)

        # The sans-I/O protocol answers pings itself; intercepting its frame output is the
        # only seam websockets offers for emulating a server with slow pongs.
        self.protocol.send_frame = send_or_hold  # type: ignore[method-assign]  # no other seam

    async def _pong_later(self, data: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self.pong(data)
        except ConnectionClosed:
            return
