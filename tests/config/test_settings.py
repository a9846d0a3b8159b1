"""Unit tests for Settings.from_environ: defaults, parsing, and one line per bad value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import trustme

from gateway.config import EMBEDDED, Settings, SettingsError

SECRET = "s3cr3t-cache-key-7f2a9c"


def problems(environ: dict[str, str]) -> list[str]:
    """The lines of the SettingsError that ``environ`` must raise."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ(environ)
    return str(caught.value).splitlines()


def test_empty_environ_gives_the_documented_defaults() -> None:
    """An empty environment yields the documented defaults, embedded simulator included."""
    settings = Settings.from_environ({})

    assert settings == Settings()
    assert settings.upstream_url == EMBEDDED
    assert settings.embedded is True
    assert settings.upstream_tz == "Asia/Kolkata"
    assert settings.zone == ZoneInfo("Asia/Kolkata")
    assert settings.upstream_timeout == 5.0
    assert settings.upstream_max_connections == 100
    assert settings.cache_ttl == 15.0
    assert settings.cache_maxsize == 10_000
    assert settings.cache_key_secret is None
    assert settings.max_aliases == 50
    assert settings.request_concurrency == 16
    assert settings.graphiql is True
    assert settings.introspection is True
    assert settings.cors_origins == ()
    assert settings.log_level == "INFO"
    assert settings.env == "development"
    assert settings.shutdown_timeout == 20


def test_every_setting_is_read_from_its_key() -> None:
    """Each GATEWAY_* key sets its field, cast to the field's type."""
    settings = Settings.from_environ(
        {
            "GATEWAY_UPSTREAM_URL": "https://api.deepcall.example/base",
            "GATEWAY_UPSTREAM_TZ": "Europe/Berlin",
            "GATEWAY_UPSTREAM_TIMEOUT": "2.5",
            "GATEWAY_UPSTREAM_MAX_CONNECTIONS": "7",
            "GATEWAY_UPSTREAM_CONCURRENCY": "6",
            "GATEWAY_UPSTREAM_CALLER_CONCURRENCY": "4",
            "GATEWAY_BREAKER_FAILURE_RATE": "0.25",
            "GATEWAY_BREAKER_MIN_CALLS": "8",
            "GATEWAY_BREAKER_WINDOW": "30",
            "GATEWAY_NEW_CREDENTIALS_PER_MINUTE": "5",
            "GATEWAY_INVALID_CREDENTIAL_TTL": "2.5",
            "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1,fd00::/8",
            "GATEWAY_CACHE_TTL": "0",
            "GATEWAY_CACHE_MAXSIZE": "123",
            "GATEWAY_CACHE_KEY_SECRET": SECRET,
            "GATEWAY_MAX_ALIASES": "9",
            "GATEWAY_REQUEST_CONCURRENCY": "3",
            "GATEWAY_GRAPHIQL": "false",
            "GATEWAY_INTROSPECTION": "0",
            "GATEWAY_CORS_ORIGINS": " https://dash.example.com , http://localhost:3000,",
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_ENV": "Staging",
            "GATEWAY_SHUTDOWN_TIMEOUT": "0",
        }
    )

    assert settings.upstream_url == "https://api.deepcall.example/base"
    assert settings.embedded is False
    assert settings.upstream_tz == "Europe/Berlin"
    assert settings.zone == ZoneInfo("Europe/Berlin")
    assert settings.upstream_timeout == 2.5
    assert settings.upstream_max_connections == 7
    assert (settings.upstream_concurrency, settings.upstream_caller_concurrency) == (6, 4)
    assert settings.breaker_failure_rate == 0.25
    assert settings.breaker_min_calls == 8
    assert settings.breaker_window == 30.0
    assert settings.new_credentials_per_minute == 5.0
    assert settings.invalid_credential_ttl == 2.5
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.1", "fd00::/8")
    assert settings.cache_ttl == 0.0
    assert settings.cache_maxsize == 123
    assert settings.cache_key_secret is not None
    assert str(settings.cache_key_secret) == SECRET
    assert settings.max_aliases == 9
    assert settings.request_concurrency == 3
    assert settings.graphiql is False
    assert settings.introspection is False
    assert settings.cors_origins == ("https://dash.example.com", "http://localhost:3000")
    assert settings.log_level == "DEBUG"
    assert settings.env == "staging"
    assert settings.shutdown_timeout == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("false", False), ("False", False), ("0", False)],
)
def test_booleans_accept_true_false_one_zero(raw: str, expected: bool) -> None:
    """Boolean settings accept true/false/1/0 in any case."""
    settings = Settings.from_environ({"GATEWAY_GRAPHIQL": raw, "GATEWAY_INTROSPECTION": raw})

    assert settings.graphiql is expected
    assert settings.introspection is expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        # not a number
        ("GATEWAY_UPSTREAM_TIMEOUT", "soon"),
        ("GATEWAY_UPSTREAM_MAX_CONNECTIONS", "many"),
        ("GATEWAY_CACHE_TTL", "15s"),
        ("GATEWAY_CACHE_MAXSIZE", "1.5"),
        ("GATEWAY_MAX_ALIASES", ""),
        ("GATEWAY_REQUEST_CONCURRENCY", "ten"),
        ("GATEWAY_SHUTDOWN_TIMEOUT", "20s"),
        # out of range
        ("GATEWAY_UPSTREAM_TIMEOUT", "0"),
        ("GATEWAY_UPSTREAM_TIMEOUT", "301"),
        ("GATEWAY_UPSTREAM_TIMEOUT", "nan"),
        ("GATEWAY_UPSTREAM_MAX_CONNECTIONS", "0"),
        ("GATEWAY_CACHE_TTL", "-1"),
        ("GATEWAY_CACHE_TTL", "inf"),
        ("GATEWAY_CACHE_MAXSIZE", "0"),
        ("GATEWAY_MAX_ALIASES", "1001"),
        ("GATEWAY_REQUEST_CONCURRENCY", "0"),
        ("GATEWAY_SHUTDOWN_TIMEOUT", "-5"),
        # bad URL
        ("GATEWAY_UPSTREAM_URL", "ftp://api.deepcall.example"),
        ("GATEWAY_UPSTREAM_URL", "api.deepcall.example"),
        ("GATEWAY_UPSTREAM_URL", "https://"),
        ("GATEWAY_UPSTREAM_URL", "https://user:pw@api.deepcall.example"),
        ("GATEWAY_UPSTREAM_URL", "https://api.deepcall.example/?x=1"),
        ("GATEWAY_UPSTREAM_URL", "Embedded"),
        # bad time zone
        ("GATEWAY_UPSTREAM_TZ", "Mars/Olympus_Mons"),
        ("GATEWAY_UPSTREAM_TZ", "../../etc/passwd"),
        ("GATEWAY_UPSTREAM_TZ", ""),
        # bad origin
        ("GATEWAY_CORS_ORIGINS", "dash.example.com"),
        ("GATEWAY_CORS_ORIGINS", "https://ok.example.com,ftp://files.example.com"),
        ("GATEWAY_CORS_ORIGINS", "*"),
        ("GATEWAY_BREAKER_FAILURE_RATE", "0"),
        ("GATEWAY_BREAKER_FAILURE_RATE", "1.5"),
        ("GATEWAY_BREAKER_MIN_CALLS", "0"),
        ("GATEWAY_BREAKER_WINDOW", "0.5"),
        ("GATEWAY_NEW_CREDENTIALS_PER_MINUTE", "-1"),
        ("GATEWAY_INVALID_CREDENTIAL_TTL", "3601"),
        # bad networks
        ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("GATEWAY_TRUSTED_PROXIES", "10.0.0.1, proxy.internal"),
        # settings that were replaced
        ("GATEWAY_BREAKER_THRESHOLD", "5"),
        # bad log level
        ("GATEWAY_LOG_LEVEL", "loud"),
        # bad bool
        ("GATEWAY_GRAPHIQL", "yes"),
        ("GATEWAY_INTROSPECTION", "2"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_key(key: str, value: str) -> None:
    """A single bad value is refused with exactly one line, and that line names the key."""
    lines = problems({key: value})

    assert len(lines) == 1, lines
    assert key in lines[0]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (
            {"GATEWAY_UPSTREAM_CONCURRENCY": "16"},
            "GATEWAY_UPSTREAM_CALLER_CONCURRENCY must not exceed GATEWAY_UPSTREAM_CONCURRENCY",
        ),
        (
            {"GATEWAY_UPSTREAM_MAX_CONNECTIONS": "50"},
            "GATEWAY_UPSTREAM_CONCURRENCY must not exceed GATEWAY_UPSTREAM_MAX_CONNECTIONS",
        ),
        (
            {"GATEWAY_UPSTREAM_TIMEOUT": "20"},
            "GATEWAY_UPSTREAM_DEADLINE must be at least GATEWAY_UPSTREAM_TIMEOUT",
        ),
    ],
)
def test_settings_that_contradict_each_other_are_one_line(
    settings: dict[str, str], named: str
) -> None:
    """A value valid alone but not beside the defaults of another is refused, saying which."""
    lines = problems(settings)

    assert len(lines) == 1, lines
    assert lines[0].startswith(named)


def test_the_defaults_leave_one_caller_short_of_every_upstream_slot() -> None:
    """By default one caller may hold 64 of 100 upstream slots: 36 stay for the others."""
    defaults = Settings()

    assert defaults.upstream_caller_concurrency < defaults.upstream_concurrency
    assert defaults.upstream_concurrency <= defaults.upstream_max_connections


def test_a_replaced_setting_says_what_replaced_it() -> None:
    """GATEWAY_BREAKER_THRESHOLD, set, stops start-up and names the settings to use instead."""
    lines = problems({"GATEWAY_BREAKER_THRESHOLD": "5"})

    assert lines == [
        "GATEWAY_BREAKER_THRESHOLD is no longer read: the breaker now opens on a failure rate, "
        "see GATEWAY_BREAKER_FAILURE_RATE, GATEWAY_BREAKER_MIN_CALLS and GATEWAY_BREAKER_WINDOW"
    ]


def test_a_time_zone_directory_is_one_line_naming_its_key() -> None:
    """A zone group such as "America" (a directory, not a zone) is refused with one line."""
    lines = problems({"GATEWAY_UPSTREAM_TZ": "America"})

    assert len(lines) == 1, lines
    assert "GATEWAY_UPSTREAM_TZ" in lines[0]


@pytest.mark.parametrize(
    ("key", "value", "explanation"),
    [
        ("GATEWAY_LOG_LEVEL", "loud", "expected DEBUG, INFO, WARNING or ERROR"),
        ("GATEWAY_CORS_ORIGINS", "ftp://files.example.com", "is not an origin like"),
    ],
)
def test_a_bad_value_line_says_what_is_expected(key: str, value: str, explanation: str) -> None:
    """The line for a value refused by our own validator carries that validator's explanation."""
    lines = problems({key: value})

    assert len(lines) == 1, lines
    assert explanation in lines[0]
    assert "_log_level" not in lines[0]
    assert "_origins" not in lines[0]


def test_an_origin_with_a_path_is_refused() -> None:
    """A CORS origin carrying a path (even a lone "/") is refused, since it could never match."""
    lines = problems({"GATEWAY_CORS_ORIGINS": "https://dash.example.com/"})

    assert len(lines) == 1, lines
    assert "GATEWAY_CORS_ORIGINS" in lines[0]


def test_several_bad_values_give_one_line_each() -> None:
    """Several bad values are all reported together, one line per key."""
    lines = problems(
        {
            "GATEWAY_UPSTREAM_TIMEOUT": "soon",
            "GATEWAY_CACHE_MAXSIZE": "0",
            "GATEWAY_UPSTREAM_URL": "ftp://x.example",
            "GATEWAY_UPSTREAM_TZ": "Nowhere/Special",
            "GATEWAY_GRAPHIQL": "maybe",
            "GATEWAY_LOG_LEVEL": "chatty",
        }
    )

    assert len(lines) == 6, lines
    assert {line.split("=", 1)[0] for line in lines} == {
        "GATEWAY_UPSTREAM_TIMEOUT",
        "GATEWAY_CACHE_MAXSIZE",
        "GATEWAY_UPSTREAM_URL",
        "GATEWAY_UPSTREAM_TZ",
        "GATEWAY_GRAPHIQL",
        "GATEWAY_LOG_LEVEL",
    }


@pytest.mark.parametrize("env", ["production", "Production", "PRODUCTION"])
def test_production_without_an_upstream_url_is_refused(env: str) -> None:
    """GATEWAY_ENV=production with GATEWAY_UPSTREAM_URL unset refuses to serve demo data."""
    lines = problems({"GATEWAY_ENV": env})

    assert len(lines) == 1, lines
    assert "GATEWAY_UPSTREAM_URL" in lines[0]


def test_production_may_ask_for_the_embedded_simulator_by_name() -> None:
    """GATEWAY_ENV=production with GATEWAY_UPSTREAM_URL=embedded is allowed on purpose."""
    settings = Settings.from_environ(
        {"GATEWAY_ENV": "production", "GATEWAY_UPSTREAM_URL": "embedded"}
    )

    assert settings.env == "production"
    assert settings.embedded is True


def test_production_with_a_real_upstream_url_is_allowed() -> None:
    """GATEWAY_ENV=production with an http(s) upstream URL starts normally."""
    settings = Settings.from_environ(
        {"GATEWAY_ENV": "production", "GATEWAY_UPSTREAM_URL": "https://api.deepcall.example"}
    )

    assert settings.embedded is False
    assert settings.upstream_url == "https://api.deepcall.example"


def test_repr_hides_the_cache_key_secret() -> None:
    """repr() and str() of Settings never show GATEWAY_CACHE_KEY_SECRET's value."""
    settings = Settings.from_environ({"GATEWAY_CACHE_KEY_SECRET": SECRET})

    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert SECRET not in repr(settings.cache_key_secret)


def test_settings_errors_do_not_show_the_cache_key_secret() -> None:
    """A SettingsError raised beside a set secret does not mention the secret's value."""
    lines = problems({"GATEWAY_CACHE_KEY_SECRET": SECRET, "GATEWAY_CACHE_TTL": "never"})

    assert len(lines) == 1, lines
    assert SECRET not in "\n".join(lines)


def test_every_numeric_setting_reads_its_key_and_checks_its_range() -> None:
    """Each numeric field reads GATEWAY_<FIELD>, and a value past its range is one line."""
    for field in dataclasses.fields(Settings):
        default = getattr(Settings(), field.name)
        if type(default) not in (int, float):
            continue
        key = f"GATEWAY_{field.name.upper()}"
        bumped = default / 2 if field.name == "breaker_failure_rate" else default + 1
        environ = {key: str(bumped)}
        # Settings that must stay within another's: move the other out of the way.
        if field.name == "upstream_timeout":
            environ["GATEWAY_UPSTREAM_DEADLINE"] = "900"
        if field.name == "upstream_concurrency":
            environ["GATEWAY_UPSTREAM_MAX_CONNECTIONS"] = "1000"
        assert getattr(Settings.from_environ(environ), field.name) == bumped, key
        with pytest.raises(SettingsError) as caught:
            Settings.from_environ({key: "-99999999"})
        assert str(caught.value).splitlines() == [
            line for line in str(caught.value).splitlines() if key in line
        ]
        assert len(str(caught.value).splitlines()) == 1, key


def test_deadline_shorter_than_one_try_is_refused() -> None:
    """An overall deadline shorter than the per-try timeout is a configuration error."""
    with pytest.raises(SettingsError, match="GATEWAY_UPSTREAM_DEADLINE"):
        Settings.from_environ({"GATEWAY_UPSTREAM_TIMEOUT": "5", "GATEWAY_UPSTREAM_DEADLINE": "2"})


def test_persisted_documents_are_checked_at_start_up(tmp_path: Path) -> None:
    """A persisted-documents file that cannot be used stops start-up with one line saying why."""
    good = tmp_path / "ok.json"
    good.write_text(json.dumps({"abc": "{ callCount }"}))
    settings = Settings.from_environ(
        {"GATEWAY_PERSISTED_DOCUMENTS": str(good), "GATEWAY_PERSISTED_ONLY": "true"}
    )
    assert (settings.persisted_documents, settings.persisted_only) == (str(good), True)

    (bad := tmp_path / "bad.json").write_text("[1, 2]")
    (line,) = problems({"GATEWAY_PERSISTED_DOCUMENTS": str(bad)})
    assert line.startswith("GATEWAY_PERSISTED_DOCUMENTS=")
    assert "expected an apollo-persisted-query-manifest" in line
    (line,) = problems({"GATEWAY_PERSISTED_DOCUMENTS": str(tmp_path / "absent.json")})
    assert "cannot read it" in line


def test_persisted_only_needs_a_list_of_documents() -> None:
    """GATEWAY_PERSISTED_ONLY without GATEWAY_PERSISTED_DOCUMENTS (nothing could run) is refused."""
    (line,) = problems({"GATEWAY_PERSISTED_ONLY": "true"})
    assert "GATEWAY_PERSISTED_DOCUMENTS" in line
    assert Settings.from_environ({}).apq_cache == 1000
    assert problems({"GATEWAY_APQ_CACHE": "0"})[0].startswith("GATEWAY_APQ_CACHE")


PROXY_PASSWORD = "pr0xy-pw-31c9"


def test_the_upstream_proxy_is_read_and_hidden_in_repr() -> None:
    """GATEWAY_UPSTREAM_PROXY is kept whole for the transport, and repr() never shows it."""
    url = f"http://egress:{PROXY_PASSWORD}@proxy.internal:3128"
    settings = Settings.from_environ({"GATEWAY_UPSTREAM_PROXY": url})

    assert settings.upstream_proxy is not None
    assert str(settings.upstream_proxy) == url
    assert PROXY_PASSWORD not in repr(settings)
    assert "proxy.internal" not in repr(settings)
    assert Settings.from_environ({}).upstream_proxy is None
    assert Settings.from_environ({"GATEWAY_UPSTREAM_PROXY": ""}).upstream_proxy is None
    bare = Settings.from_environ({"GATEWAY_UPSTREAM_PROXY": "http://10.0.0.1:8080/"})
    assert str(bare.upstream_proxy) == "http://10.0.0.1:8080/"


@pytest.mark.parametrize(
    ("value", "explanation"),
    [
        ("https://proxy.internal:3128", "expected http://[user:password@]host:port"),
        ("socks5://proxy.internal:1080", "expected http://[user:password@]host:port"),
        ("proxy.internal:3128", "expected http://[user:password@]host:port"),
        ("http://proxy.internal", "expected http://[user:password@]host:port"),
        ("http://:3128", "expected http://[user:password@]host:port"),
        ("http://proxy.internal:99999", "expected http://[user:password@]host:port"),
        ("http://proxy.internal:port", "expected http://[user:password@]host:port"),
        (
            "http://proxy.internal:3128/path",
            "the proxy URL must not carry a path, query or fragment",
        ),
        (
            "http://proxy.internal:3128?x=1",
            "the proxy URL must not carry a path, query or fragment",
        ),
        (
            "http://proxy.internal:3128#top",
            "the proxy URL must not carry a path, query or fragment",
        ),
    ],
)
def test_a_bad_upstream_proxy_is_one_line_that_never_repeats_it(
    value: str, explanation: str
) -> None:
    """A malformed proxy URL stops start-up with one line saying what to send, without the URL."""
    with_password = value.replace("proxy.internal", f"user:{PROXY_PASSWORD}@proxy.internal")
    for candidate in (value, with_password):
        lines = problems({"GATEWAY_UPSTREAM_PROXY": candidate})

        assert lines == [f"GATEWAY_UPSTREAM_PROXY (value not shown) is invalid: {explanation}"]
        assert PROXY_PASSWORD not in lines[0]


def test_a_ca_file_that_cannot_be_loaded_is_one_line(tmp_path: Path) -> None:
    """GATEWAY_UPSTREAM_CA_FILE must name a readable PEM file of certificates."""
    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("hello\n")
    for path in (tmp_path / "missing.pem", not_pem, tmp_path):
        lines = problems({"GATEWAY_UPSTREAM_CA_FILE": str(path)})
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"GATEWAY_UPSTREAM_CA_FILE={str(path)!r} is invalid: ")


def test_a_pem_ca_file_is_accepted(tmp_path: Path) -> None:
    """A PEM certificate authority is accepted and kept by path."""
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))

    settings = Settings.from_environ({"GATEWAY_UPSTREAM_CA_FILE": str(ca_file)})

    assert settings.upstream_ca_file == str(ca_file)
    assert Settings().upstream_ca_file == ""
