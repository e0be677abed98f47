import pytest
from pydantic import Field

from chariot_migrate.services.kit.settings import ServiceSettings, SettingsError


class MySettings(ServiceSettings):
    table: str = "t"
    batch: int = 10
    members: dict[str, dict[str, str]] = Field(default_factory=dict)


def test_service_prefix_wins_over_common_then_default():
    env = {
        "REDIS_URL": "redis://common",
        "CHARIOT_RISK_ASSESSMENT_REDIS_URL": "redis://own",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "CHARIOT_RISK_ASSESSMENT_BATCH": "25",
        "CHARIOT_RISK_ASSESSMENT_MEMBERS": '{"a@x": {"b@x": "analyst"}}',
    }
    s = MySettings.from_env("risk-assessment", env)
    assert s.service_name == "risk-assessment"
    assert s.redis_url == "redis://own"
    assert s.aws_endpoint_url == "http://127.0.0.1:5000"
    assert s.batch == 25 and s.table == "t"
    assert s.members == {"a@x": {"b@x": "analyst"}}
    assert s.host == "127.0.0.1"  # never 0.0.0.0 by default


def test_bad_value_names_the_variable():
    with pytest.raises(SettingsError, match="CHARIOT_ACCOUNT_BATCH"):
        MySettings.from_env("account", {"CHARIOT_ACCOUNT_BATCH": "lots"})


def test_overrides_beat_env():
    s = ServiceSettings.from_env("x", {"AUDIENCE": "a"}, audience="b")
    assert s.audience == "b"
