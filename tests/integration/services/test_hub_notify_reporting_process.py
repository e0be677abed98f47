"""integration-hub, notification and reporting as real processes (with asset-discovery and
risk-assessment), on a moto server with the Redis Streams bus:

inbound webhook (pin checked by notification) → asset + risk in their owners' stores →
``risk.assessed`` → notification delivers to a local webhook receiver (allowlisted) →
reporting's read model counts it; files go through presigned S3 URLs on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import graph_procs_kit as kit
import httpx
import pytest
import svc_c_procs
from conftest import Proc

pytestmark = pytest.mark.integration


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def stack():
    receiver = Receiver()
    with kit.moto_with_signing_key() as estate:
        prefix = f"it{uuid.uuid4().hex[:8]}-"
        env = kit.env_for(estate, prefix)
        names = ("asset-discovery", "risk-assessment", "notification", "integration-hub", "reporting", "account")
        ports = svc_c_procs.listeners(names)
        url = svc_c_procs.urls(ports)
        specs = {
            "asset-discovery": {},
            "risk-assessment": {"CHARIOT_RISK_ASSESSMENT_ASSET_DISCOVERY_URL": url["asset-discovery"]},
            "notification": {"CHARIOT_NOTIFICATION_NOTIFY_ALLOWED_HOSTS": f"127.0.0.1:{receiver.port}",
                             "CHARIOT_NOTIFICATION_NOTIFY_BACKOFF_S": "0.05"},
            "integration-hub": {"CHARIOT_INTEGRATION_HUB_NOTIFICATION_URL": url["notification"],
                                "CHARIOT_INTEGRATION_HUB_ASSET_URL": url["asset-discovery"],
                                "CHARIOT_INTEGRATION_HUB_RISK_URL": url["risk-assessment"]},
            "reporting": {"CHARIOT_REPORTING_FILES_BUCKET": "chariot-graph-it"},
            "account": {},
        }
        started = svc_c_procs.start_all(specs, env, ports)
        try:
            assets, risks, notify = started["asset-discovery"], started["risk-assessment"], started["notification"]
            hub, reporting = started["integration-hub"], started["reporting"]
            yield {"estate": estate, "prefix": prefix, "assets": assets, "risks": risks, "notify": notify,
                   "hub": hub, "reporting": reporting, "receiver": receiver, "account": started["account"]}
        finally:
            for p in started.values():
                p.stop()
            kit.clean_redis(prefix)
            receiver.server.shutdown()


def _ready(c: httpx.Client, *procs: Proc) -> None:
    for p in procs:
        assert kit.eventually(lambda p=p: c.get(p.url + "/ready").status_code == 200), p.url


def test_inbound_webhook_to_alert_delivery(stack):
    user = f"u{uuid.uuid4().hex[:8]}@example.com"
    notify, hub, assets = stack["notify"], stack["hub"], stack["assets"]
    with httpx.Client(headers=kit.headers(stack["estate"]["key"], user), timeout=15) as c:
        _ready(c, notify, hub)
        assert c.post(notify.url + "/account/hook", json={"config": {}, "value": "pin-1"}).status_code == 200
        alert = {"value": "T", "config": {"url": f"http://127.0.0.1:{stack['receiver'].port}/alerts",
                                          "template": '{"msg": "{{ event.data.name }} {{ event.data.status }}"}'}}
        assert c.post(notify.url + "/account/alert", json=alert).status_code == 200
        enc = base64.b64encode(user.encode()).decode().rstrip("=")
        with httpx.Client(timeout=15) as anon:  # the webhook is public: the pin authenticates
            bad = anon.put(f"{hub.url}/hook/{enc}/wrong", json={"dns": "h.com", "name": "h.com"})
            assert bad.status_code == 401 and bad.json() == {"message": "Unauthorized"}
            r = anon.put(f"{hub.url}/hook/{enc}/pin-1", json={"dns": "h.com", "name": "h.com", "finding": "open-admin"})
        assert r.status_code == 200, r.text
        assert r.json()["assets"][0]["key"] == "#asset#h.com#h.com" and r.json()["risks"][0]["status"] == "TI"
        attrs = c.post(assets.url + "/my", json={"node": {"labels": ["Attribute"]}}).json()["attributes"]
        assert [(a["name"], a["value"]) for a in attrs] == [("source", "webhook")]
        assert kit.eventually(lambda: stack["receiver"].received, 15)
        assert {"msg": "open-admin TI"} in stack["receiver"].received
        # The receiver can see the delivery a moment before notification records it in its log.
        def delivered() -> list:
            return c.get(notify.url + "/notification/deliveries").json()["deliveries"]

        assert kit.eventually(delivered, 10)
        log = delivered()
        assert log[0]["status"] == "delivered"
        # integrations: linked rows round-trip and announce themselves
        r = c.post(hub.url + "/account/amazon", json={"config": {"k": "v"}, "value": "123456789012"})
        assert r.status_code == 200 and r.json()["key"] == f"#account#{user}#amazon#123456789012"
        # the account service lists integration and webhook rows (from integration.linked) like legacy
        account = stack["account"]

        def listed() -> set:
            rows = c.get(account.url + "/my", params={"key": f"#account#{user}#"}).json().get("accounts", [])
            return {(x["member"], x["value"]) for x in rows}

        assert kit.eventually(lambda: {("amazon", "123456789012"), ("hook", "pin-1")} <= listed(), 15), listed()
        unlink = {"method": "DELETE", "url": hub.url + "/account/amazon", "json": {"value": "123456789012"}}
        assert c.request(**unlink).status_code == 200  # the CLI sends DELETE with a JSON body
        assert c.request(**unlink).status_code == 404
        assert kit.eventually(lambda: ("amazon", "123456789012") not in listed(), 15)


def test_reporting_files_and_counts(stack):
    user = f"u{uuid.uuid4().hex[:8]}@example.com"
    reporting, assets = stack["reporting"], stack["assets"]
    with httpx.Client(headers=kit.headers(stack["estate"]["key"], user), timeout=15) as c:
        _ready(c, reporting)
        url = c.put(reporting.url + "/file", params={"name": "home/hello.txt"}).json()["url"]
        assert url.startswith(stack["estate"]["endpoint"])  # reachable on 127.0.0.1, like legacy's
        assert httpx.put(url, content=b"hello world").status_code == 200  # no auth headers, like the CLI
        found = c.get(reporting.url + "/my", params={"key": "#file#home/hello.txt", "exact": "true"}).json()
        assert found["files"][0]["name"] == "home/hello.txt"
        got = c.get(reporting.url + "/file", params={"name": "home/hello.txt"}).json()["url"]
        assert httpx.get(got).content == b"hello world"
        assert c.delete(reporting.url + "/file", params={"name": "home/hello.txt"}).status_code == 200
        assert c.get(reporting.url + "/file", params={"name": "home/hello.txt"}).status_code == 404
        # counts come from asset-discovery's events on the Redis stream
        for n in ("a", "b"):
            assert c.put(assets.url + "/asset", json={"group": "r.com", "identifier": f"{n}.r.com"}).status_code == 200

        def counted() -> dict:
            return c.get(reporting.url + "/my/count", params={"key": "#asset#r.com#"}).json()

        assert kit.eventually(lambda: counted()["count"] == 2, 15), counted()
        assert counted()["status"] == {"A": 2}
        stats = c.get(reporting.url + "/my", params={"key": "#statistic#my#status:A#total", "exact": "true"}).json()
        assert stats["statistics"][0]["data"] == {"count": 2}
