"""Tests for pispeaker.credentials: lookup order, error messages, and never leaking the key."""

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from pispeaker.config import Config, LiveConfig, McpServerConfig, redacted_toml
from pispeaker.credentials import (
    CREDENTIAL_NAME,
    ApiKey,
    describe_api_key,
    describe_mcp_tokens,
    find_api_key,
    mcp_credential_name,
    mcp_tokens,
    require_api_key,
)
from pispeaker.errors import CredentialError

SECRET = "AIza-very-secret-value"


@pytest.fixture
def everywhere(tmp_path: Path) -> tuple[LiveConfig, dict[str, str]]:
    """A key in all four places, each distinguishable by its value."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / CREDENTIAL_NAME).write_text("from-credential\n", encoding="utf-8")
    key_file = tmp_path / "key"
    key_file.write_text("  from-file\n", encoding="utf-8")
    environ = {
        "CREDENTIALS_DIRECTORY": str(credentials),
        "GEMINI_API_KEY": "from-gemini",
        "GOOGLE_API_KEY": "from-google",
    }
    return LiveConfig(api_key_file=key_file), environ


def found(live: LiveConfig, environ: dict[str, str]) -> tuple[str, str]:
    key = require_api_key(live, environ)
    return key.value.get_secret_value(), key.source


def test_lookup_order(everywhere: tuple[LiveConfig, dict[str, str]], tmp_path: Path) -> None:
    live, environ = everywhere
    assert found(live, environ) == ("from-credential", f"systemd credential {CREDENTIAL_NAME}")
    del environ["CREDENTIALS_DIRECTORY"]
    assert found(live, environ) == ("from-file", f"file {tmp_path / 'key'}")
    live = LiveConfig()
    assert found(live, environ) == ("from-gemini", "$GEMINI_API_KEY")
    environ["GEMINI_API_KEY"] = "  \n"  # empty counts as absent for environment variables
    assert found(live, environ) == ("from-google", "$GOOGLE_API_KEY")


def test_credentials_directory_without_the_credential_falls_through(tmp_path: Path) -> None:
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path), "GOOGLE_API_KEY": "g"}
    assert found(LiveConfig(), environ) == ("g", "$GOOGLE_API_KEY")


def test_nothing_anywhere_lists_all_four_places() -> None:
    assert find_api_key(LiveConfig(), {}) is None
    with pytest.raises(CredentialError) as caught:
        require_api_key(LiveConfig(), {"GEMINI_API_KEY": ""})
    message = str(caught.value)
    for place in (
        "$CREDENTIALS_DIRECTORY/gemini-api-key",
        "live.api_key_file",
        "$GEMINI_API_KEY",
        "$GOOGLE_API_KEY",
        "systemd-creds encrypt",
        "/etc/pispeaker/gemini-api-key",
    ):
        assert place in message


def test_configured_but_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "no-such-key"
    with pytest.raises(CredentialError, match="no-such-key: No such file") as caught:
        find_api_key(LiveConfig(api_key_file=path), {"GEMINI_API_KEY": "would-hide-the-mistake"})
    assert "live.api_key_file" in str(caught.value)


def test_configured_but_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(CredentialError, match="is empty"):
        find_api_key(LiveConfig(api_key_file=path), {"GEMINI_API_KEY": "x"})


def test_describe_api_key() -> None:
    key = ApiKey(SecretStr(SECRET), "$GEMINI_API_KEY")
    assert describe_api_key(key) == "found in $GEMINI_API_KEY (value hidden)"
    missing = describe_api_key(None)
    assert missing.startswith("not found: looked in $CREDENTIALS_DIRECTORY/gemini-api-key")
    assert missing.endswith("`pispeaker demo` needs none")


def test_the_value_never_shows() -> None:
    key = require_api_key(LiveConfig(), {"GEMINI_API_KEY": SECRET})
    shown = [repr(key), str(key), f"{key}", describe_api_key(key)]
    shown.append(redacted_toml(Config(), describe_api_key(key)))
    assert all(SECRET not in text for text in shown)


def test_the_value_is_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET, encoding="utf-8")
    caplog.set_level(logging.DEBUG)
    require_api_key(LiveConfig(api_key_file=key_file), {})
    find_api_key(LiveConfig(), {"GEMINI_API_KEY": SECRET})
    assert caplog.records  # the source was logged, so the check below is not vacuous
    assert SECRET not in caplog.text


def _servers(tmp_path: Path) -> list[McpServerConfig]:
    token_file = tmp_path / "home-token"
    token_file.write_text(f"  {SECRET}-home\n", encoding="utf-8")
    return [
        McpServerConfig(name="home", url="http://ha:8123/api/mcp", token_file=token_file),
        McpServerConfig(name="open", url="http://notes/mcp"),
        McpServerConfig(name="local", command=["notes-mcp"]),
    ]


def test_mcp_tokens_come_from_the_credential_then_the_token_file(tmp_path: Path) -> None:
    servers = _servers(tmp_path)
    tokens = mcp_tokens(servers, {})
    assert list(tokens) == ["home"]  # the others have none
    assert tokens["home"].value.get_secret_value() == f"{SECRET}-home"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / mcp_credential_name("home")).write_text("from-credential", encoding="utf-8")
    tokens = mcp_tokens(servers, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert (tokens["home"].value.get_secret_value(), tokens["home"].source) == (
        "from-credential",
        "systemd credential mcp-home-token",
    )


def test_every_unreadable_mcp_token_is_named_at_once_without_a_value(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    servers = [
        McpServerConfig(name="home", url="http://ha/api/mcp", token_file=tmp_path / "missing"),
        McpServerConfig(name="cal", url="http://cal/mcp", token_file=empty),
    ]
    with pytest.raises(CredentialError) as caught:
        mcp_tokens(servers, {})
    message = str(caught.value)
    assert "cannot read the token of MCP server home from file" in message
    assert "the token of MCP server cal in file" in message
    assert "is empty" in message


def test_check_config_says_where_each_mcp_token_is_and_never_its_value(tmp_path: Path) -> None:
    lines = describe_mcp_tokens(_servers(tmp_path), {})
    assert lines == [
        f"MCP server home token: found in file {tmp_path / 'home-token'} (value hidden)",
        "MCP server open token: none (sent without one)",
    ]
    assert SECRET not in repr(mcp_tokens(_servers(tmp_path), {}))
