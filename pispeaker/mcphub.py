"""The tools of MCP servers (Home Assistant's, say) as pispeaker Tools: the one module that
speaks the mcp SDK.

One connection per configured server, kept warm between conversations. Each connection lives
in one owner task that enters and exits the SDK's contexts (anyio's cancel scopes must be left
by the task that entered them): it connects, lists the tools, holds the connection until told
to stop, then closes it. Calls run in the caller's task over that connection.

Every tool is declared blocking, scheduling WHEN_IDLE, whatever its annotations say: a read
(GetLiveContext, readOnlyHint) and an action (HassTurnOn) alike end in words the model needs
before it answers ("the kitchen light is on").

The connection opens with the initialize handshake, the one every deployed server speaks
(Home Assistant's too). The SDK's default first probes server/discover, which servers older
than the 2026-07-28 protocol may ignore (a 10 s stall) or die of; a server that speaks only
the new protocol refuses the handshake with UNSUPPORTED_PROTOCOL_VERSION, and is then
connected again with the probe.
"""

import asyncio
import contextlib
import json
import logging
import math
import re
import sys
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CONNECTION_CLOSED,
    UNSUPPORTED_PROTOCOL_VERSION,
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    Implementation,
    ResourceLink,
    TextContent,
)
from mcp.types import Tool as McpTool
from pydantic import ValidationError

import pispeaker
from pispeaker.config import McpServerConfig
from pispeaker.tools import Tool, ToolError

log = logging.getLogger(__name__)

#: Longest answer handed to the model, in characters; the rest is cut, and the cut said.
RESULT_LIMIT = 4000
#: The built-in tools' names (pispeaker.tools.builtin_tools): an MCP tool of the same name
#: gets its server's name as a prefix.
BUILTIN_NAMES = ("end_conversation", "set_volume", "get_local_time")
#: Function names the Live API accepts.
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
#: A token a header can carry as it is. (An HTTP library refusing one quotes it in its error.)
_TOKEN = re.compile(r"[\x21-\x7e]+")
#: tools/list pages read at most: a server that pages forever cannot hang a refresh.
_PAGES = 100
#: An SSE stream is a long-lived GET that may carry nothing for hours; the SDK's default
#: (300 s) would end an idle one. A dead one is found by the next refresh's tools/list.
_SSE_IDLE_S = 24 * 3600.0
_CLIENT_INFO = Implementation(name="pispeaker", version=pispeaker.__version__)


@dataclass(frozen=True)
class ServerState:
    """One MCP server, for ``pispeaker tools`` and the logs."""

    name: str
    reachable: bool
    reason: str  # "" when reachable; else a sentence naming the cause and the next step
    tools: tuple[str, ...]  # the names declared to the model (after allow and prefixing)
    problems: tuple[str, ...] = ()  # tools left out, allowed names not listed: sentences


@dataclass(frozen=True)
class _Offer:
    """One MCP tool as declared: the Tool, and where a call goes."""

    tool: Tool
    link: "_Link"
    remote: str  # its name on the server


class McpHub:
    """Keeps one connection per configured MCP server, warm between conversations.

    ``tokens``: bearer tokens by server name (for url servers; absent means none).
    ``reserved``: names already taken (the built-in tools'); a clashing MCP tool is offered
    as ``<server>_<name>``, and left out if that is taken too.
    """

    def __init__(
        self,
        servers: list[McpServerConfig],
        tokens: Mapping[str, str],
        reserved: Iterable[str] = BUILTIN_NAMES,
    ) -> None:
        self._links = [_Link(server, tokens.get(server.name)) for server in servers]
        self._reserved = frozenset(reserved)
        self._offers: dict[str, _Offer] = {}
        self._problems: dict[str, tuple[str, ...]] = {}
        self._refreshing = asyncio.Lock()  # one refresh at a time: each reconnects

    def __repr__(self) -> str:
        return f"McpHub({', '.join(link.name for link in self._links)})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection (stdio servers are stopped), each within its timeout_s."""
        self._offers = {}
        await asyncio.gather(*(link.close() for link in self._links))

    async def refresh(self) -> None:
        """Look at every server, concurrently, each within its timeout_s: list again the
        tools of those connected, connect those that are not (or no longer answer). At the
        start, and as each conversation opens.

        Never raises for a server's failure: its tools are left out, and the outage is
        logged once (a warning with the reason); a server that comes back is logged at info.
        """
        async with self._refreshing:
            await asyncio.gather(*(self._refresh(link) for link in self._links))
            self._declare()

    def tools(self) -> list[Tool]:
        """The tools of the servers connected at the last refresh(). (A server that dropped
        since keeps them until the next: a call then says the server is not connected.)"""
        return [offer.tool for offer in self._offers.values()]

    def states(self) -> list[ServerState]:
        """Each server as it is now, in configuration order."""
        return [
            ServerState(
                name=link.name,
                reachable=link.connected,
                reason=link.reason(),
                tools=tuple(name for name, offer in self._offers.items() if offer.link is link),
                problems=self._problems.get(link.name, ()),
            )
            for link in self._links
        ]

    async def call(self, name: str, args: dict[str, Any]) -> str:
        """Call the tool declared as ``name``: its answer as text, at most RESULT_LIMIT
        characters. Raises ToolError with a sentence the model can say: the server's own
        error, no answer within timeout_s, or the server gone. A cancellation of the caller
        cancels the request on the server too, and propagates."""
        offer = self._offers.get(name)
        if offer is None:
            raise ToolError(f"no MCP server offers a tool called {name!r}")
        return await offer.link.call(offer.remote, args)

    async def _refresh(self, link: "_Link") -> None:
        if await link.alive():
            return
        error = await link.open()
        if error is not None:
            link.went_down(error)
        else:
            link.came_up()

    def _declare(self) -> None:
        """Choose each connected server's tools and their names, in configuration order."""
        taken = set(self._reserved)
        offers: dict[str, _Offer] = {}
        for link in self._links:
            problems = link.unlisted() if link.connected else []
            for remote in link.offered() if link.connected else []:
                name = _free_name(link.name, remote.name, taken)
                problem = _unusable(link.name, remote, name)
                if problem:
                    problems.append(problem)
                    continue
                assert name is not None
                taken.add(name)
                offers[name] = _Offer(self._tool(name, remote), link, remote.name)
            link.report(problems)
            self._problems[link.name] = tuple(problems)
        self._offers = offers

    def _tool(self, name: str, remote: McpTool) -> Tool:
        async def run(args: dict[str, Any]) -> str:
            return await self.call(name, args)

        return Tool(
            name,
            remote.description or remote.title or remote.name,
            dict(remote.input_schema),
            run,
            blocking=True,  # see the module docstring
            scheduling="WHEN_IDLE",
        )


class _Link:
    """One server's connection, entered, held and closed by its owner task."""

    def __init__(self, config: McpServerConfig, token: str | None) -> None:
        self.config = config
        self.name = config.name
        self._token = token
        self._client: Client | None = None
        self._listed: list[McpTool] = []
        self._has_tools = True
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._status: int | None = None  # the last HTTP error status, for the reason
        self._outage: str | None = None  # the reason logged for the outage now; None when up
        self._dropped = ""  # why a connection that was up ended
        self._ever_up = False
        self._reported: set[str] = set()  # problems already logged

    def __repr__(self) -> str:  # never the token
        return f"<MCP server {self.name}>"

    @property
    def connected(self) -> bool:
        return self._client is not None

    def reason(self) -> str:
        """Empty when connected; else why not, and what to do."""
        if self._client is not None:
            return ""
        if self._outage is not None:
            return self._outage
        if self._dropped:
            return f"{self._dropped}; it is tried again when the next conversation opens"
        return "not connected yet: it is tried when the next conversation opens"

    # -- the connection's life ------------------------------------------------------------

    async def open(self) -> BaseException | None:
        """Connect and list the tools, within timeout_s; what stopped it, or None."""
        await self.close()
        if self._token is not None and not _TOKEN.fullmatch(self._token):
            return _BadToken()
        self._stop = asyncio.Event()
        self._status = None
        ready: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(ready), name=f"mcp server {self.name}")
        return await asyncio.shield(ready)

    async def close(self) -> None:
        """Stop the owner task and wait for it: its close is bounded by timeout_s (and the
        SDK kills a stdio server that outlives its closed stdin within about 4 s more)."""
        self._client = None
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # The owner still ends within its bound: wait for it, so that nothing outlives
            # the hub, then let the cancellation go on.
            await asyncio.wait([task])
            raise

    async def _own(self, ready: asyncio.Future[BaseException | None]) -> None:
        """The owner task: connect, list, hold until stopped, close, all in this task; the
        connect and the close each within timeout_s. ``ready`` gets None once connected,
        else what stopped the connect."""
        try:
            with anyio.CancelScope(deadline=self._deadline()) as scope:
                async with self._connection() as client:
                    self._listed = await self._list(client)
                    scope.deadline = math.inf
                    self._client = client
                    _settle(ready, None)
                    await self._stop.wait()
                    self._client = None
                    scope.deadline = self._deadline()
            if scope.cancelled_caught:
                _settle(ready, TimeoutError())
        except Exception as error:  # a server's failure, whatever it is: it stays isolated
            log.debug("MCP server %s: the connection ended", self.name, exc_info=True)
            if ready.done() and not self._stop.is_set():
                self._dropped = f"the connection dropped ({self._reason(error)})"
            _settle(ready, error)
        finally:
            self._client = None
            _settle(ready, RuntimeError("the connection was closed before it was up"))

    def _deadline(self) -> float:
        return anyio.current_time() + self.config.timeout_s

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Client]:
        """A connected Client: by the initialize handshake, or by server/discover for a
        server that refuses the handshake as too old (see the module docstring)."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                client = await stack.enter_async_context(self._client_for("legacy"))
            except Exception as error:
                leaf = _leaf(error)
                if not (isinstance(leaf, MCPError) and leaf.code == UNSUPPORTED_PROTOCOL_VERSION):
                    raise
                log.debug("MCP server %s: no handshake; connecting with discovery", self.name)
                client = await stack.enter_async_context(self._client_for("auto"))
            yield client

    @contextlib.asynccontextmanager
    async def _client_for(self, mode: str) -> AsyncIterator[Client]:
        """A Client in ``mode`` over this server's transport: stdio, SSE or streamable HTTP."""
        config = self.config
        options: dict[str, Any] = {"mode": mode, "cache": None, "client_info": _CLIENT_INFO}
        if config.command:
            program = StdioServerParameters(command=config.command[0], args=config.command[1:])
            # The server's stderr is ours (the journal, under systemd).
            async with Client(stdio_client(program, errlog=sys.stderr), **options) as client:
                yield client
            return
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        if urllib.parse.urlsplit(config.url).path.rstrip("/").endswith("/sse"):
            transport = sse_client(
                config.url,
                headers=headers,
                timeout=config.timeout_s,
                sse_read_timeout=_SSE_IDLE_S,
                httpx_client_factory=self._http,
            )
            async with Client(transport, **options) as client:
                yield client
            return
        # No read timeout: the server's GET stream may idle for hours; every request has
        # its own bound (timeout_s).
        timeout = httpx2.Timeout(config.timeout_s, read=None)
        async with (
            self._http(headers, timeout) as http,
            Client(streamable_http_client(config.url, http_client=http), **options) as client,
        ):
            yield client

    def _http(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        """An HTTP client that notes the error status of a request (a POST): the SDK reports
        it only as "Server returned an error response". (A GET may fail harmlessly: a server
        need not offer the stream of server-sent messages.)"""

        async def note(response: httpx2.Response) -> None:
            if response.request.method == "POST" and response.status_code >= 400:
                self._status = response.status_code

        return httpx2.AsyncClient(
            headers=headers, timeout=timeout, auth=auth, event_hooks={"response": [note]}
        )

    async def _list(self, client: Client) -> list[McpTool]:
        """Every tool the server lists, page by page (at most _PAGES)."""
        self._has_tools = client.server_capabilities.tools is not None
        if not self._has_tools:
            return []
        tools: list[McpTool] = []
        cursor: str | None = None
        for _ in range(_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return tools
        log.warning(
            "MCP server %s lists more than %d pages of tools; only those are offered",
            self.name,
            _PAGES,
        )
        return tools

    # -- reachability ---------------------------------------------------------------------

    async def alive(self) -> bool:
        """Whether the connection is up and lists its tools again within timeout_s (so a
        tool added on the server is offered from the next conversation on). A dead
        connection is dropped here, to be reconnected. (Not a ping: the 2026-07-28
        protocol has none.)"""
        client = self._client
        if client is None:
            return False
        try:
            with anyio.fail_after(self.config.timeout_s):
                self._listed = await self._list(client)
        except Exception as error:  # whatever it is, the connection is no use
            log.debug("MCP server %s: no answer to tools/list", self.name, exc_info=True)
            self._drop(f"it stopped answering ({self._reason(error)})")
            return False
        return True

    def went_down(self, error: BaseException) -> None:
        """Log an outage once: its first failure."""
        reason = self._reason(error)
        if self._outage is None:
            log.warning(
                "MCP server %s is unreachable, so its tools are left out: %s", self.name, reason
            )
        else:
            log.debug("MCP server %s is still unreachable: %s", self.name, reason)
        self._outage = reason

    def came_up(self) -> None:
        count = len(self._listed)
        if self._outage is not None:
            log.info("MCP server %s is back: it lists %d tools", self.name, count)
        elif self._dropped:
            log.info("MCP server %s reconnected (%s)", self.name, self._dropped)
        elif not self._ever_up:
            log.info("MCP server %s connected: it lists %d tools", self.name, count)
        self._outage, self._dropped, self._ever_up = None, "", True

    def _drop(self, why: str) -> None:
        """Mark the connection gone (its owner closes it); the next refresh reconnects."""
        if self._client is None:
            return
        log.debug("MCP server %s: %s", self.name, why)
        self._dropped = why
        self._client = None
        self._stop.set()

    def _reason(self, error: BaseException) -> str:
        """Why the connection failed, and what to do, as a sentence."""
        return self._scrub(self._cause(_leaf(error)))

    def _cause(self, error: BaseException) -> str:
        config = self.config
        if isinstance(error, _BadToken):
            return (
                "its token has characters a header cannot carry (spaces, line breaks, "
                f"non-ASCII): check token_file, or the systemd credential mcp-{self.name}-token"
            )
        where = config.url or " ".join(config.command)
        status = self._status
        if isinstance(error, httpx2.HTTPStatusError):  # the SSE transport's GET
            status = error.response.status_code
        if status in (401, 403):
            if not self._token:
                return (
                    f"it asks for a token (HTTP {status}) and none is configured: set "
                    f"token_file, or the systemd credential mcp-{self.name}-token"
                )
            return (
                f"it refused the token (HTTP {status}): check token_file, or the systemd "
                f"credential mcp-{self.name}-token"
            )
        if status is not None:
            return f"{where} answered HTTP {status}: check the url (the MCP endpoint)"
        if isinstance(error, TimeoutError | httpx2.TimeoutException):
            return (
                f"it did not answer within {config.timeout_s:g} s: check that it runs and that "
                f"{where} is right"
            )
        if isinstance(error, httpx2.TransportError) or (config.url and isinstance(error, OSError)):
            return f"cannot reach {where} ({error}): check that the server runs and the url"
        if isinstance(error, FileNotFoundError):
            return f"cannot start {config.command[0]!r}: no such program; check the command"
        if isinstance(error, OSError):
            return f"cannot start {config.command[0]!r} ({error.strerror}): check the command"
        if isinstance(error, MCPError) and error.code == CONNECTION_CLOSED:
            return f"it closed the connection ({error.message}): check that {where} runs"
        if isinstance(error, MCPError):
            return f"the MCP handshake failed ({error.message}): is {where} an MCP server?"
        return f"{type(error).__name__}: {error} (the debug log has the details)"

    def _scrub(self, text: str) -> str:
        """``text`` without the token, should a library ever quote it."""
        return text.replace(self._token, "<token>") if self._token else text

    # -- tools ----------------------------------------------------------------------------

    def offered(self) -> list[McpTool]:
        """The listed tools that ``allow`` lets through."""
        allow = self.config.allow
        return [tool for tool in self._listed if not allow or tool.name in allow]

    def unlisted(self) -> list[str]:
        """A problem for each allowed name the server does not list."""
        if not self._has_tools:
            return ["it offers no tools (it declares no tools capability)"]
        names = {tool.name for tool in self._listed}
        return [
            f"allow names {wanted!r}, but the server lists no such tool; it lists "
            f"{', '.join(sorted(names)) or 'none'}"
            for wanted in self.config.allow
            if wanted not in names
        ]

    def report(self, problems: list[str]) -> None:
        """Log each problem once, when first seen."""
        for problem in problems:
            if problem not in self._reported:
                log.warning("MCP server %s: %s", self.name, problem)
        self._reported = set(problems)

    async def call(self, tool: str, args: dict[str, Any]) -> str:
        """Call ``tool`` on this server: see McpHub.call."""
        client = self._client
        if client is None:
            raise ToolError(f"the {self.name} server is not connected: {self.reason()}")
        timeout = self.config.timeout_s
        try:
            with anyio.fail_after(timeout):
                result = await client.call_tool(tool, args)
        except TimeoutError:
            raise ToolError(f"the {self.name} server did not answer within {timeout:g} s") from None
        except MCPError as error:
            if error.code == CONNECTION_CLOSED:
                self._drop(f"the connection closed during a call to {tool}")
                raise ToolError(
                    f"the {self.name} server closed the connection; it is tried again when "
                    "the next conversation opens"
                ) from None
            raise ToolError(
                self._scrub(
                    f"the {self.name} server answered {tool} with an error: {error.message}"
                )
            ) from None
        except (ValidationError, RuntimeError):
            # A result that breaks the protocol or the tool's own output schema (the SDK
            # checks it): the answer is no use, the connection still is.
            log.warning("MCP server %s answered %s malformed", self.name, tool, exc_info=True)
            raise ToolError(f"the {self.name} server answered {tool} malformed") from None
        except Exception as error:  # whatever it is, it is this server's: it stays isolated
            log.warning("MCP server %s: the call to %s failed", self.name, tool, exc_info=True)
            self._drop(f"a call to {tool} failed ({type(error).__name__})")
            raise ToolError(f"the call to {tool} on the {self.name} server failed") from None
        return _answer(tool, result)


class _BadToken(Exception):
    """The token cannot go in a header (it is not sent: its error would quote it)."""


def _answer(tool: str, result: CallToolResult) -> str:
    """The result as text for the model; an error result raises ToolError with its text."""
    text = _compact(result)
    if result.is_error:
        raise ToolError(text or f"{tool} failed without saying why")
    return text


def _compact(result: CallToolResult) -> str:
    """The text contents joined; the structured content as compact JSON where there is no
    text; a note for each image, audio clip or resource; cut to RESULT_LIMIT characters."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, ImageContent):
            parts.append("[image omitted]")
        elif isinstance(block, AudioContent):
            parts.append("[audio omitted]")
        elif isinstance(block, ResourceLink | EmbeddedResource):
            parts.append("[resource omitted]")
    has_text = any(isinstance(block, TextContent) for block in result.content)
    if not has_text and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, separators=(",", ":")))
    return _cut("\n".join(parts))


def _cut(text: str) -> str:
    if len(text) <= RESULT_LIMIT:
        return text
    return f"{text[:RESULT_LIMIT]}… (cut: {len(text) - RESULT_LIMIT} more characters)"


def _free_name(server: str, name: str, taken: set[str]) -> str | None:
    """``name`` if free, else ``<server>_<name>`` if free, else None."""
    return next((n for n in (name, f"{server}_{name}") if n not in taken), None)


def _unusable(server: str, tool: McpTool, name: str | None) -> str | None:
    """Why ``tool`` cannot be declared as ``name`` (None: it is taken, prefixed too)."""
    if name is None:
        return (
            f"tool {tool.name!r} is left out: {tool.name!r} and {server}_{tool.name} are "
            "both taken (rename a server, or leave one out with allow)"
        )
    if not _FUNCTION_NAME.fullmatch(name):
        return (
            f"tool {tool.name!r} is left out: the Live API takes only names of letters, "
            "digits and _ . : -, at most 64, starting with a letter or _"
        )
    if problem := _schema_problem(tool.input_schema):
        return f"tool {tool.name!r} is left out: its input schema {problem}"
    return None


def _schema_problem(schema: Any) -> str | None:
    """Why the Live API cannot take ``schema`` as a function's parameters, or None.

    The API takes JSON Schema, describing an object whose properties are the arguments.
    google-genai checks nothing here (parameters_json_schema is Any), and a schema the API
    refuses fails the whole session setup: so this checks the shape itself. A subschema
    must be an object: the API's Schema has no boolean schemas.
    """
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return "does not describe an object of named arguments"
    return _subschema_problem(schema, "the arguments")


def _subschema_problem(schema: Any, where: str) -> str | None:
    if not isinstance(schema, dict):
        return f"gives {where} {json.dumps(schema)}, not a schema object"
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return f"gives {where} properties that are not an object"
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        return f"gives {where} a 'required' that is not a list of names"
    children = [(f"argument {name!r}", sub) for name, sub in properties.items()]
    if "items" in schema:
        children.append((f"the items of {where}", schema["items"]))
    for keyword in ("anyOf", "oneOf", "allOf"):
        variants = schema.get(keyword, [])
        if not isinstance(variants, list):
            return f"gives {where} an {keyword} that is not a list"
        children += [(f"a variant of {where}", sub) for sub in variants]
    for child_where, child in children:
        if problem := _subschema_problem(child, child_where):
            return problem
    return None


def _leaf(error: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups: anyio's task groups wrap."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _settle(ready: asyncio.Future[BaseException | None], outcome: BaseException | None) -> None:
    """Give ``ready`` its outcome, unless it has one (first come, first kept)."""
    if not ready.done():
        ready.set_result(outcome)
