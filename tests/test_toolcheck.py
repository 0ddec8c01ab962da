"""``pispeaker tools`` against a real MCP server started as a person would, and the CLI's
answers to bad arguments."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from pispeaker.cli import main
from tests.test_mcphub import TOKEN, HttpServer, free_port, records

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[HttpServer]:
    server = HttpServer(tmp_path)
    yield server
    server.stop()


def _config(tmp_path: Path, *urls: str) -> Path:
    token = tmp_path / "home-token"
    token.write_text(TOKEN + "\n")
    tables = [
        f'[[tools.mcp]]\nname = "{name}"\nurl = "{url}"\ntoken_file = "{token}"\ntimeout_s = 20\n'
        for name, url in zip(("home", "garage"), urls, strict=False)
    ]
    path = tmp_path / "pispeaker.toml"
    path.write_text("\n".join(tables))
    return path


def test_tools_lists_the_builtins_and_each_servers_tools(
    home: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(_config(tmp_path, home.url)), "tools"]) == 0
    out, err = capsys.readouterr()
    assert "  get_local_time (BLOCKING): The current local date and time" in out
    assert "MCP server home: reachable, 9 tools" in out
    assert "  HassTurnOn (BLOCKING): Turns on a device or entity." in out
    assert "  home_set_volume (BLOCKING)" in out  # set_volume is a built-in's
    assert "! tool 'OddSchema' is left out" in out
    assert TOKEN not in out + err


def test_tools_exits_1_naming_a_server_it_cannot_reach(
    home: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    down = f"http://127.0.0.1:{free_port()}/mcp"
    assert main(["--config", str(_config(tmp_path, home.url, down)), "tools"]) == 1
    out, _ = capsys.readouterr()
    assert "MCP server home: reachable" in out
    assert f"MCP server garage: UNREACHABLE: cannot reach {down}" in out


def test_tools_call_runs_one_tool_on_the_server_and_prints_its_answer(
    home: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_config(tmp_path, home.url))
    args = '{"name": "kitchen light"}'
    assert main(["--config", config, "tools", "--call", "HassTurnOn", "--args", args]) == 0
    assert '"output": "Turned on the kitchen light"' in capsys.readouterr().out
    assert records(home.record) == [
        {"tool": "HassTurnOn", "args": {"name": "kitchen light", "area": None, "domain": None}}
    ]
    assert main(["--config", config, "tools", "--call", "BoilerStatus"]) == 1
    assert '"error": "Error executing tool BoilerStatus' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [("{nope", "--args is not JSON"), ("[1]", "--args must be a JSON object")],
)
def test_tools_call_with_bad_arguments_says_how_to_write_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: str, message: str
) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("")
    code = main(["--config", str(config), "tools", "--call", "get_local_time", "--args", args])
    assert code == 64  # EX_USAGE
    assert message in capsys.readouterr().err
