"""The Gemini API key: where it is looked up, and how it is kept out of logs and reprs.

Lookup order, first found wins:

1. the systemd credential ``$CREDENTIALS_DIRECTORY/gemini-api-key`` (the unit loads it from
   /etc/pispeaker/gemini-api-key with LoadCredential=),
2. the file named by ``live.api_key_file``,
3. ``$GEMINI_API_KEY``,
4. ``$GOOGLE_API_KEY``.

The value only ever travels inside a ``SecretStr``; logs and messages name the source only.
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from pispeaker.config import LiveConfig, McpServerConfig
from pispeaker.errors import CredentialError

CREDENTIAL_NAME = "gemini-api-key"
ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
PLACES = (
    f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}",
    "live.api_key_file",
    *(f"${name}" for name in ENV_VARS),
)
#: Where the installed unit (systemd/pispeaker.service) loads the credential from.
KEY_FILE = Path("/etc/pispeaker") / CREDENTIAL_NAME
HOW_TO_SET = (
    f"For the service, write only the key into {KEY_FILE} (mode 0600) and restart it "
    f"(or encrypt it: systemd-creds encrypt --name={CREDENTIAL_NAME} KEYFILE "
    f"/etc/credstore.encrypted/{CREDENTIAL_NAME}, with LoadCredentialEncrypted= in a drop-in); "
    "from a shell, set live.api_key_file to a file holding only the key, or export "
    "GEMINI_API_KEY."
)

_log = logging.getLogger(__name__)


@dataclass(frozen=True, repr=False)
class Secret:
    """A secret and where it came from; repr never shows the value."""

    value: SecretStr
    #: Human description of where it was found, e.g. "$GEMINI_API_KEY".
    source: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}(value=SecretStr('**********'), source={self.source!r})"


class ApiKey(Secret):
    """A Gemini API key; str never shows the value either."""

    def __str__(self) -> str:
        return f"Gemini API key from {self.source} (value hidden)"


def find_api_key(live: LiveConfig, environ: Mapping[str, str]) -> ApiKey | None:
    """Return the first key found in lookup order, or None if there is none anywhere.

    Raises CredentialError when a place that is plainly meant to hold the key (a present
    systemd credential, a configured ``live.api_key_file``) is unreadable or empty: falling
    through to the environment would hide that mistake.
    """
    key = (
        _from_credentials_directory(environ)
        or _from_configured_file(live.api_key_file)
        or _from_environment(environ)
    )
    if key is not None:
        _log.debug("Gemini API key found in %s", key.source)
    return key


def require_api_key(live: LiveConfig, environ: Mapping[str, str]) -> ApiKey:
    """Like find_api_key, but raise CredentialError saying where to put a key if none exists."""
    key = find_api_key(live, environ)
    if key is None:
        raise CredentialError(
            f"no Gemini API key found; looked in {', '.join(PLACES)}. {HOW_TO_SET}"
        )
    return key


def describe_api_key(key: ApiKey | None) -> str:
    """The status line ``pispeaker check-config`` prints for the key, without its value."""
    if key is None:
        return f"not found: looked in {', '.join(PLACES)}; `pispeaker demo` needs none"
    return f"found in {key.source} (value hidden)"


def _from_credentials_directory(environ: Mapping[str, str]) -> ApiKey | None:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / CREDENTIAL_NAME
    # The unit may pass other credentials but not this one; that is not an error.
    if not path.exists():
        return None
    fix = f"Re-create it with systemd-creds encrypt --name={CREDENTIAL_NAME}."
    return _read_key_file(path, f"systemd credential {CREDENTIAL_NAME}", fix)


def _from_configured_file(path: Path | None) -> ApiKey | None:
    if path is None:
        return None
    fix = "Write only the API key into that file, or unset live.api_key_file."
    return _read_key_file(path, f"file {path}", fix)


def _from_environment(environ: Mapping[str, str]) -> ApiKey | None:
    for name in ENV_VARS:
        value = environ.get(name, "").strip()
        if value:
            return ApiKey(SecretStr(value), f"${name}")
    return None


def _read_key_file(path: Path, source: str, fix: str) -> ApiKey:
    return ApiKey(_read_secret(path, "API key", source, fix), source)


def _read_secret(path: Path, what: str, source: str, fix: str) -> SecretStr:
    """Read a file holding only a secret, stripping surrounding whitespace; errors never
    quote its contents."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CredentialError(f"cannot read {what} from {source}: {reason}. {fix}") from exc
    except UnicodeDecodeError:
        # from None: the decode error would quote bytes of the file in a traceback.
        raise CredentialError(f"{what} in {source} is not UTF-8 text. {fix}") from None
    if not value:
        raise CredentialError(f"{what} in {source} is empty. {fix}")
    return SecretStr(value)


# -- MCP servers' tokens ------------------------------------------------------------------


class McpToken(Secret):
    """An MCP server's bearer token."""


#: Where the credentials mcp-NAME-token are loaded from (the Ansible role writes them there);
#: read directly when no credential is passed, e.g. by `sudo pispeaker tools`.
MCP_TOKEN_DIR = KEY_FILE.parent


def mcp_credential_name(server: str) -> str:
    """The systemd credential that holds server ``server``'s token."""
    return f"mcp-{server}-token"


def mcp_tokens(
    servers: Iterable[McpServerConfig], environ: Mapping[str, str]
) -> dict[str, McpToken]:
    """The token of each server that has one, by server name: the systemd credential
    mcp-NAME-token first, then its token_file, else /etc/pispeaker/mcp-NAME-token if it
    exists. Raises CredentialError naming every token
    that is configured but cannot be read (all at once)."""
    tokens: dict[str, McpToken] = {}
    problems: list[str] = []
    for server in (server for server in servers if server.url):  # stdio servers take none
        try:
            token = _mcp_token(server, environ)
        except CredentialError as error:
            problems.append(str(error))
            continue
        if token is not None:
            tokens[server.name] = token
    if problems:
        raise CredentialError(" ".join(problems))
    return tokens


def describe_mcp_tokens(
    servers: Iterable[McpServerConfig], environ: Mapping[str, str]
) -> list[str]:
    """One status line per url server for ``pispeaker check-config``, never the value."""
    lines = []
    for server in (server for server in servers if server.url):
        try:
            token = _mcp_token(server, environ)
        except CredentialError as error:
            lines.append(f"MCP server {server.name} token: {error}")
            continue
        found = f"found in {token.source} (value hidden)" if token else "none (sent without one)"
        lines.append(f"MCP server {server.name} token: {found}")
    return lines


def _mcp_token(server: McpServerConfig, environ: Mapping[str, str]) -> McpToken | None:
    what = f"the token of MCP server {server.name}"
    name = mcp_credential_name(server.name)
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory and (path := Path(directory) / name).exists():
        source = f"systemd credential {name}"
        fix = f"Write only the token into the file LoadCredential={name}: names."
        return McpToken(_read_secret(path, what, source, fix), source)
    fix = (
        "Write only the token into that file, readable by the service's user, or load it "
        f"as the systemd credential {name} (and run checks such as `pispeaker tools` as root)."
    )
    path = server.token_file or MCP_TOKEN_DIR / name
    if server.token_file is None and not path.exists():
        return None
    return McpToken(_read_secret(path, what, f"file {path}", fix), f"file {path}")
