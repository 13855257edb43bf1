"""Strict values: a boolean environment variable is one of a few words (0.1.8 read any
other word, a typo included, as False) and a Redis URL's path is a database number
(redis-py would silently use database 0 for ``redis://host/cache``)."""

from __future__ import annotations

import pytest

from flowrra import BackendConfig, BrokerConfig, Config, ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("FLOWRRA_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" Yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        (" OFF\n", False),
    ],
)
def test_boolean_words_in_any_case(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("FLOWRRA_EXECUTOR_RETRY_JITTER", raw)
    assert Config.from_env().executor.retry_jitter is expected


@pytest.mark.parametrize("raw", ["maybe", "ture", "yes please", "", "2", "enabled"])
def test_any_other_word_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("FLOWRRA_EXECUTOR_RETRY_JITTER", raw)
    with pytest.raises(ConfigError) as info:
        Config.from_env()
    message = str(info.value)
    assert "FLOWRRA_EXECUTOR_RETRY_JITTER" in message
    assert "true/false" in message and repr(raw) in message


@pytest.mark.parametrize(
    "variable",
    ["FLOWRRA_SCHEDULER_ENABLED", "FLOWRRA_BROKER_RETRY_ON_TIMEOUT"],
)
def test_every_boolean_variable_is_strict(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv("FLOWRRA_BROKER_URL", "redis://localhost:6379/0")
    monkeypatch.setenv(variable, "ture")
    with pytest.raises(ConfigError, match=variable):
        Config.from_env()


@pytest.mark.parametrize("make", [BrokerConfig, BackendConfig])
@pytest.mark.parametrize(
    "url",
    [
        "redis://:secret@localhost:6379/notanumber",
        "rediss://user:secret@localhost/cache",
        "redis://localhost/1/2",
        "redis://localhost?db=two&password=secret",
    ],
)
def test_a_redis_url_whose_database_is_not_a_number_is_refused(make: type, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(url)
    message = str(info.value)
    assert "database number like" in message
    assert "secret" not in message
    assert "***" in message if "secret" in url else True


@pytest.mark.parametrize("make", [BrokerConfig, BackendConfig])
@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://localhost:6379/15",
        "redis://localhost:6379",
        "redis://localhost:6379/",
        "redis://localhost?db=3",
        "rediss://:pw@localhost:6380/2",
        "unix:///var/run/redis.sock?db=1",
        "unix:///var/run/redis/redis.sock",
        "memory://?max_results=10",
    ],
)
def test_valid_urls_keep_working(make: type, url: str) -> None:
    assert make(url).url == url


def test_the_environment_names_the_url_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRRA_BACKEND_URL", "redis://:secret@localhost/results")
    with pytest.raises(ConfigError) as info:
        Config.from_env()
    assert "FLOWRRA_BACKEND_URL" in str(info.value)
    assert "secret" not in str(info.value)
