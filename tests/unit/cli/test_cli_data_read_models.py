"""`data backfill S` rebuilds the read models S's data feeds (READ_MODELS with fed_by), and says
so when one cannot be rebuilt because its service's tables do not exist."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from chariot_migrate.cli import dual_write_cmd as dw
from chariot_migrate.dual_write.data import BackfillResult


def test_a_backfill_rebuilds_the_read_models_its_data_feeds(monkeypatch, tmp_path):
    views = [SimpleNamespace(service="reporting-entities"), SimpleNamespace(service="gone-view")]
    ran: list[str] = []
    buf = io.StringIO()
    monkeypatch.setattr(dw, "console", Console(file=buf, width=200))
    monkeypatch.setattr(dw, "_migration", lambda cfg, service, state=None: SimpleNamespace(service=service))
    monkeypatch.setattr("chariot_migrate.dual_write.mapping.read_models_fed_by",
                        lambda cfg, service: views if service == "asset-discovery" else [])
    monkeypatch.setattr(dw, "_tables_exist", lambda cfg, m, state, endpoint: m.service != "gone-view")
    monkeypatch.setattr("chariot_migrate.rollout.evidence.write_record", lambda *a, **k: None)

    def one(cfg, mig, **_):
        ran.append(mig.service)
        return BackfillResult(service=mig.service, scanned=1, written=1, skipped_existing=0, unmapped=0,
                              resumed=False, elapsed_s=0.1)

    monkeypatch.setattr(dw, "_backfill_one", one)
    res = dw.run_backfill(SimpleNamespace(), "asset-discovery", state=str(tmp_path), endpoint_url=None)
    assert res.service == "asset-discovery" and ran == ["asset-discovery", "reporting-entities"]
    assert "gone-view: its tables do not exist" in buf.getvalue()
    ran.clear()
    dw.run_backfill(SimpleNamespace(), "account", state=str(tmp_path), endpoint_url=None)
    assert ran == ["account"]
