"""Regressions from the schemathesis run: reporting's file routes answered 500 for a file row
without its object and for names with control characters."""

from __future__ import annotations

import pytest
import svc_c_testkit as kit
from svc_c_testkit import Stack, call_service

from chariot_migrate.services.kit.request import ApiError
from chariot_migrate.services.reporting.app import ReportingSettings, create_app
from chariot_migrate.services.reporting.blobs import check_name

stack, _moto_stack = kit.stack, kit._moto_stack


@pytest.fixture
def svc(stack: Stack):
    with kit.service(create_app, settings=ReportingSettings.from_env("reporting")) as client:
        yield client


def test_encrypted_file_of_a_granted_but_never_uploaded_file_is_a_404(svc, stack: Stack) -> None:
    assert call_service(svc, stack, "PUT", "/file", query={"name": "home/later.txt"})[0] == 200
    status, body = call_service(svc, stack, "GET", "/encrypted-file", query={"name": "home/later.txt"})
    assert status == 404 and "has no content yet" in body["message"], body


@pytest.mark.parametrize("name", ["a\nb", "\x13x", "tab\there", "del\x7f"])
def test_control_characters_in_file_names_are_a_400(svc, stack: Stack, name: str) -> None:
    for method, path in (("PUT", "/file"), ("GET", "/file"), ("DELETE", "/file"), ("GET", "/encrypted-file")):
        status, body = call_service(svc, stack, method, path, query={"name": name})
        assert status == 400 and "control characters" in body["message"], (method, path, body)


def test_ordinary_unicode_names_stay_valid() -> None:
    assert check_name("home/résumé \U0001f600.pdf") == "home/résumé \U0001f600.pdf"
    with pytest.raises(ApiError):
        check_name("../etc/passwd")
