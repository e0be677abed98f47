"""DynamoDB key limits as one rule (issue 15 item 12): sort key ≤ 1024, partition key ≤ 2048 UTF-8
bytes, enforced by every key builder and the request models, with the size and limit in the reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chariot_migrate.model import keys
from chariot_migrate.model.requests import KeyBody, RiskAdd, describe


def test_the_limit_counts_utf8_bytes_not_characters():
    assert keys.check_key_size("é" * 512) == "é" * 512  # 1024 bytes
    with pytest.raises(keys.KeyError_, match="1026 bytes in UTF-8, at most 1024"):
        keys.check_key_size("é" * 513)
    keys.check_item_keys("u" * 2048, "k")
    with pytest.raises(ValueError, match="username is too long"):
        keys.check_item_keys("u" * 2049, "k")


@pytest.mark.parametrize("build", [
    lambda n: keys.asset_key("a.com", n), lambda n: keys.risk_key("a.com", n), lambda n: keys.generic_key("x", "g", n),
    lambda n: keys.attribute_key("port", n, "#asset#a#a"), lambda n: keys.preseed_key("t", "x", n),
    lambda n: keys.setting_key(n), lambda n: keys.configuration_key(n), lambda n: keys.account_key("o", n),
    lambda n: keys.file_key(n), lambda n: keys.api_key_key(n), lambda n: keys.job_key("d", n, "c"),
])
def test_every_key_builder_refuses_a_key_over_the_limit(build):
    assert build("n" * 900)
    with pytest.raises(ValueError, match="too long"):
        build("n" * 1100)


def test_request_models_name_the_field_and_the_sizes():
    with pytest.raises(ValidationError) as e:
        KeyBody.model_validate({"key": "#asset#a#" + "n" * 1100})
    assert describe(e.value) == "key: key is too long: 1109 bytes in UTF-8, at most 1024 are allowed"
    with pytest.raises(ValidationError):
        RiskAdd.model_validate({"key": "#asset#" + "x" * 2000, "name": "n", "status": "TH"})
