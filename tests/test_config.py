"""Tests for pispeaker.config: the sample file, error reporting, defaults and rendering."""

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from pispeaker.config import (
    Config,
    LiveConfig,
    load_config,
    parse_config,
    redacted_toml,
)
from pispeaker.errors import ConfigError

SAMPLE = Path(__file__).resolve().parent.parent / "config" / "pispeaker.toml"


def field_paths() -> list[str]:
    """Every ``section.key`` of the configuration, in model order (a dump of the defaults
    holds every field)."""
    return [f"{name}.{key}" for name, section in Config().model_dump().items() for key in section]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pispeaker.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def test_sample_file_holds_exactly_the_defaults() -> None:
    assert load_config(SAMPLE) == Config()


def test_sample_file_lists_every_key_and_no_other() -> None:
    data = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
    in_file = {f"{section}.{key}" for section, table in data.items() for key in table}
    assert in_file == set(field_paths())


def test_field_paths_cover_every_section() -> None:
    paths = field_paths()
    assert "live.model" in paths
    assert "audio.capture_device" in paths
    assert "logging.transcripts" in paths
    assert len(paths) == len(set(paths))


def test_three_mistakes_are_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = '[live]\nmodle = "x"\nuplink_chunk_ms = "20"\nsilence_duration_ms = 50\n'
    assert problems_of(tmp_path, text) == [
        "live.modle: unknown key (did you mean 'model'?)",
        "live.uplink_chunk_ms: expected an integer (got '20')",
        "live.silence_duration_ms: must be between 100 and 5000 (got 50)",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[live]\napi_version = "v2"',
            "live.api_version: must be one of 'v1', 'v1beta', 'v1alpha' (got 'v2')",
        ),
        ('[logging]\ntranscripts = "yes"', "logging.transcripts: expected a boolean (got 'yes')"),
        ("[live]\nconnect_timeout_s = 0.5", "live.connect_timeout_s: must be between 1 and 120"),
        ('[live]\nbase_url = "ftp://x"', "live.base_url: must start with https:// or http://"),
        ('[live]\nmodel = "models/m"', "live.model: give the model id without the 'models/'"),
        ('[live]\nlanguage = "english"', "live.language: must be a BCP-47 language code"),
        ("[live]\nca_file = 5", "live.ca_file: expected a file path string"),
        ('[audio]\ncapture_device = ""', "audio.capture_device: must not be empty"),
        ("live = 5", "live: expected a table (got 5)"),
        (
            "[conversation]\nfollow_up_s = 20\nmax_unanswered_s = 15",
            "conversation.max_unanswered_s: must be at least follow_up_s + 2 (22)",
        ),
    ],
)
def test_each_mistake_gets_a_human_message(tmp_path: Path, text: str, problem: str) -> None:
    [reported] = problems_of(tmp_path, text)
    assert reported.startswith(problem)


def test_the_bound_on_unanswered_talk_is_reported_with_every_other_mistake(
    tmp_path: Path,
) -> None:
    text = "[conversation]\nfollow_up_s = 10\nmax_unanswered_s = 11\nmax_session_s = 5\n"
    problems = problems_of(tmp_path, text)
    assert [problem.split(":")[0] for problem in problems] == [
        "conversation.max_unanswered_s",
        "conversation.max_session_s",
    ]


def test_int_is_accepted_for_a_float() -> None:
    assert parse_config({"live": {"connect_timeout_s": 5}}, "test").live.connect_timeout_s == 5.0


def test_unknown_section_suggests_the_nearest(tmp_path: Path) -> None:
    assert problems_of(tmp_path, '[lvie]\nmodel = "x"\n') == [
        "lvie: unknown section (did you mean 'live'?)"
    ]


def test_unknown_section_without_a_near_one_lists_the_sections(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "[zzzzzz]\n") == [
        "zzzzzz: unknown section (sections are "
        "'live', 'assistant', 'audio', 'conversation', 'wake', 'panel', 'logging', 'metrics', "
        "'tools')"
    ]


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        ("9460", 'metrics.listen: must be "HOST:PORT", e.g. "0.0.0.0:9460"'),
        ("0.0.0.0:0", "metrics.listen: port 0 must be between 1 and 65535"),
        ("300.1.2.3:9460", "metrics.listen: '300.1.2.3' is not an IP address"),
        ("[::g]:9460", "metrics.listen: '::g' is not an IP address"),
        ("http://pi:9460", 'metrics.listen: must be "HOST:PORT"'),
    ],
)
def test_a_bad_metrics_address_is_a_problem_naming_the_key(
    tmp_path: Path, listen: str, problem: str
) -> None:
    [reported] = problems_of(tmp_path, f'[metrics]\nlisten = "{listen}"\n')
    assert reported.startswith(problem)
    assert reported.endswith(f"(got {listen!r})")


@pytest.mark.parametrize("listen", ["0.0.0.0:9460", "127.0.0.1:9460", "[::]:9460", "pi.lan:80"])
def test_metrics_listen_takes_an_address_and_port(tmp_path: Path, listen: str) -> None:
    config = load_config(write(tmp_path, f'[metrics]\nlisten = "{listen}"\n'))
    assert config.metrics.listen == listen
    assert Config().metrics.listen == ""  # off by default


def test_toml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, '[live]\nmodel = "x"\nvoice Kore\n')
    assert problem.startswith("invalid TOML:")
    assert "line 3" in problem


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.source == str(path)
    assert caught.value.problems == [
        "cannot read config file: No such file or directory. "
        "Create it from config/pispeaker.toml or pass --config PATH."
    ]
    assert caught.value.exit_code == 78


def test_a_directory_is_named_as_one_with_the_file_to_give_instead(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.problems == [
        f"is a directory, not a config file; pass the file, e.g. --config "
        f"{tmp_path / 'pispeaker.toml'}"
    ]


def test_models_are_frozen() -> None:
    config = Config()
    with pytest.raises(ValidationError):
        config.live.voice = "Puck"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.live = LiveConfig()  # type: ignore[misc]


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == Config()


def test_empty_string_path_means_unset(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[live]\nca_file = ""\napi_key_file = "/k"\n'))
    assert config.live.ca_file is None
    assert config.live.api_key_file == Path("/k")


def test_redacted_toml_parses_back_to_the_same_config() -> None:
    config = parse_config(
        {
            "live": {"ca_file": "/etc/ca.pem", "system_instruction": 'Say "hi"\n\tand \\ go\x7f'},
            "audio": {"capture_device": "plughw:CARD=Device,DEV=0"},
            "logging": {"level": "debug", "transcripts": False},
        },
        "test",
    )
    text = redacted_toml(config, "found in $GEMINI_API_KEY (value hidden)")
    assert parse_config(tomllib.loads(text), "rendered") == config


def test_redacted_toml_lists_every_key_and_the_key_status() -> None:
    text = redacted_toml(Config(), "not found:\nlooked everywhere")
    data = tomllib.loads(text)
    assert {f"{section}.{key}" for section, table in data.items() for key in table} == set(
        field_paths()
    )
    assert "# Gemini API key: not found: looked everywhere\n" in text


def test_wake_and_panel_mistakes_are_reported_together(tmp_path: Path) -> None:
    text = (
        '[wake]\nmodels = ["hey_jarvs", "/nowhere/custom.tflite"]\n'
        "thresholds = { alexa = 0.6 }\n"
        "[panel]\nbutton_pin = 17\nled_pins = [17, 27]\nled_rgb = true\n"
    )
    problems = problems_of(tmp_path, text)
    assert len(problems) == 4
    assert problems[0].startswith("wake.models: no built-in wake word 'hey_jarvs' (did you mean")
    assert "'hey_jarvis'" in problems[0]
    assert "built-in: alexa, hey_jarvis, hey_mycroft, hey_rhasspy, okay_nabu" in problems[0]
    assert "model file '/nowhere/custom.tflite' does not exist" in problems[0]
    assert problems[1].startswith("wake.thresholds: 'alexa' is not one of wake.models")
    assert problems[2].startswith("panel.led_pins: GPIO17 is already the button_pin")
    assert problems[3].startswith("panel.led_rgb: an RGB LED needs 3 led_pins")


def test_custom_model_paths_and_per_model_thresholds_are_accepted(tmp_path: Path) -> None:
    model = tmp_path / "kitchen.tflite"
    model.write_bytes(b"model")
    config = parse_config(
        {"wake": {"models": ["alexa", str(model)], "thresholds": {"kitchen": 0.7}}}, "test"
    )
    assert config.wake.threshold_of("kitchen") == 0.7
    assert config.wake.threshold_of("alexa") == 0.5


# -- the model's rules -----------------------------------------------------------------------


def test_the_ga_model_and_search_are_the_defaults() -> None:
    assert Config().live.model == "gemini-3.8-live"
    assert Config().live.google_search


def test_settings_the_ga_model_refuses_are_all_reported_before_any_connection(
    tmp_path: Path,
) -> None:
    problems = problems_of(
        tmp_path,
        '[live]\nthinking_level = "low"\nproactive_audio = "off"\naffective_dialog = true\n',
    )
    assert len(problems) == 3
    assert problems[0].startswith("live.thinking_level: gemini-3.8-live reasons as it talks")
    assert problems[1].startswith("live.proactive_audio: proactive audio is always on")
    assert problems[2].startswith("live.affective_dialog: gemini-3.8-live has no affective")


def test_a_thinking_setting_must_be_the_kind_the_model_takes(tmp_path: Path) -> None:
    text = (
        '[live]\nmodel = "gemini-2.5-flash-native-audio-preview-12-2025"\nthinking_level = "low"\n'
    )
    [problem] = problems_of(tmp_path, text)
    assert "takes thinking_budget, not a level" in problem
    extended = '[live]\nmodel = "gemini-3.8-live-extended-thinking"\nthinking_level = "high"\n'
    assert load_config(write(tmp_path, extended)).live.thinking_level == "high"


def test_proactive_audio_on_2_5_needs_v1alpha(tmp_path: Path) -> None:
    text = '[live]\nmodel = "gemini-2.5-flash-native-audio-preview-12-2025"\n'
    [problem] = problems_of(tmp_path, text + 'proactive_audio = "on"\n')
    assert problem.startswith('live.proactive_audio: proactive audio needs api_version = "v1alpha"')
    allowed = text + 'api_version = "v1alpha"\nproactive_audio = "on"\naffective_dialog = true\n'
    assert load_config(write(tmp_path, allowed)).live.proactive_audio == "on"


def test_an_unknown_model_is_used_with_a_warning_naming_the_known_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[live]\nmodel = "gemini-9-live"\n'))
    [warning] = config.live.warnings()
    assert "'gemini-9-live' is not a model pispeaker knows" in warning
    assert "gemini-3.8-live" in warning
    assert Config().live.warnings() == []


def test_an_unknown_time_zone_names_the_way_to_list_them(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, '[assistant]\ntime_zone = "Europe/Lyon"\n')
    assert problem.startswith("assistant.time_zone: unknown time zone 'Europe/Lyon'")
    assert "timedatectl list-timezones" in problem


@pytest.mark.parametrize(("old", "duplex"), [("true", "hardware"), ("false", "off")])
def test_the_deprecated_voice_barge_in_is_read_as_duplex_with_a_warning(
    tmp_path: Path, old: str, duplex: str
) -> None:
    config = load_config(write(tmp_path, f"[conversation]\nvoice_barge_in = {old}\n"))
    assert config.conversation.duplex == duplex
    (warning,) = config.warnings()
    assert "conversation.voice_barge_in is deprecated" in warning
    assert f"duplex = {duplex!r}" in warning
    assert "voice_barge_in" not in redacted_toml(config, "hidden")


def test_voice_barge_in_and_duplex_together_are_one_problem(tmp_path: Path) -> None:
    text = '[conversation]\nvoice_barge_in = true\nduplex = "auto"\n'
    (problem,) = problems_of(tmp_path, text)
    assert "voice_barge_in is replaced by duplex: remove voice_barge_in" in problem


def test_an_unknown_duplex_mode_names_the_choices(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, '[conversation]\nduplex = "full"\n')
    assert problem.startswith("conversation.duplex")
    assert "auto" in problem
    assert "hardware" in problem


def test_mcp_servers_are_read_as_arrays_of_tables(tmp_path: Path) -> None:
    text = (
        '[[tools.mcp]]\nname = "home"\nurl = "http://homeassistant.local:8123/api/mcp"\n'
        'token_file = "/etc/pispeaker/home-assistant-token"\nallow = ["HassTurnOn"]\n'
        '[[tools.mcp]]\nname = "notes"\ncommand = ["/usr/local/bin/notes-mcp", "--stdio"]\n'
    )
    home, notes = load_config(write(tmp_path, text)).tools.mcp
    assert (home.name, home.token_file, home.allow, home.timeout_s) == (
        "home",
        Path("/etc/pispeaker/home-assistant-token"),
        ["HassTurnOn"],
        10.0,
    )
    assert (notes.url, notes.command) == ("", ["/usr/local/bin/notes-mcp", "--stdio"])


def test_every_mcp_server_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        '[[tools.mcp]]\nname = "Home"\nurl = "ftp://ha"\n'
        '[[tools.mcp]]\nname = "both"\nurl = "http://ha"\ncommand = ["x"]\n'
        '[[tools.mcp]]\nname = "neither"\n'
        '[[tools.mcp]]\nname = "local"\ncommand = ["x"]\ntoken_file = "/t"\ntimeout_s = 0\n'
        '[[tools.mcp]]\nurl = "http://ha"\n'
    )
    assert problems_of(tmp_path, text) == [
        "tools.mcp.0.name: must be 1-32 lower-case letters, digits or _, starting with a "
        "letter (got 'Home')",
        "tools.mcp.0.url: must be an http:// or https:// URL with a host (got 'ftp://ha')",
        "tools.mcp.1: server 'both': give exactly one of url and command",
        "tools.mcp.2: server 'neither': give exactly one of url and command",
        "tools.mcp.3.timeout_s: must be between 1.0 and 120.0 (got 0)",
        "tools.mcp.4.name: required",
    ]


def test_two_mcp_servers_of_one_name_are_a_problem(tmp_path: Path) -> None:
    text = (
        '[[tools.mcp]]\nname = "a"\ncommand = ["x"]\n[[tools.mcp]]\nname = "a"\ncommand = ["y"]\n'
    )
    assert problems_of(tmp_path, text) == [
        "tools.mcp: each server needs its own name; given twice: 'a'"
    ]


def test_the_effective_config_shows_mcp_servers_as_tables_that_read_back() -> None:
    servers = [{"name": "home", "url": "http://ha:8123/api/mcp"}, {"name": "n", "command": ["x"]}]
    config = parse_config({"tools": {"mcp": servers}}, "test")
    shown = redacted_toml(config, "from a test")
    assert shown.count("[[tools.mcp]]") == 2
    assert parse_config(tomllib.loads(shown), "shown") == config
