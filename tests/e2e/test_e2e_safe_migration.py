"""The straight path through the CLI loses nothing: the real `guard` client writes at 0 %, the
refused shift names `prepare`, `prepare` needs no environment, account and asset-discovery move
to new while risk-assessment stays on legacy (a mixed split), and a rollback brings back every
write made on the new side. The same guard suite also runs in this mixed mode
(test_e2e_guard_cli.py, mode "mixed-prepared"), which is the "exactly like all-legacy" check."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from guard_harness import CHARIOT_MIGRATE, Guard, StackMode, start_stack
from real_stack_kit import cm, cm_json, legacy_table, status_of

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MOVED = ("account", "asset-discovery")
PEERS = ("risk-assessment", "capabilities", "integration-hub", "notification", "reporting")  # shares_data_with


def bare_env() -> dict[str, str]:
    """No AWS_* and no CHARIOT_* at all: what an operator's fresh shell has."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CHARIOT_", "PRAETORIAN_CLI_"))}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("stack-safe"),
                    StackMode("safe", services=True, env=(("TABLE_PREFIX", f"safe{uuid.uuid4().hex[:8]}-"),)))
    try:
        yield s
    finally:
        s.stop()


def test_write_at_zero_prepare_mixed_split_and_rollback_lose_nothing(stack, tmp_path):
    guard = Guard(stack, tmp_path / "home")
    sdk = guard.sdk()
    run = uuid.uuid4().hex[:8]
    before = f"zero-{run}.example.com"
    guard.run("add", "asset", "-g", before, "-i", "10.0.0.1", "-f", "external")
    guard.run("add", "risk", "CVE-2024-0001", "-a", f"#asset#{before}#10.0.0.1", "-s", "TH", "-c", "at 0 %")

    # Unprepared: refused with one sentence that names the fixing command; nothing changes.
    refused = cm(stack, "shift", "account", "100", ok=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "account is not prepared: dual write is off" in refused.stderr
    assert "`chariot-migrate prepare account`" in " ".join(refused.stderr.split())
    assert status_of(stack, "account")["percent"] == 0

    # `prepare` finds the stack's AWS endpoint itself (stack.json in the state directory).
    for service in MOVED:
        p = subprocess.run([str(CHARIOT_MIGRATE), "prepare", service, "--routes", str(stack.routes),
                            "--state", stack.state_url], cwd=stack.workdir, env=bare_env(), capture_output=True,
                           text=True, timeout=180)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"{service} is prepared" in p.stdout
        again = subprocess.run([str(CHARIOT_MIGRATE), "prepare", service, "--routes", str(stack.routes),
                                "--state", stack.state_url], cwd=stack.workdir, env=bare_env(),
                               capture_output=True, text=True, timeout=180)
        assert again.returncode == 0 and "dual write already on" in again.stdout  # idempotent: only catches up
    row = status_of(stack, "asset-discovery")
    assert row["verify_ok"] is True and row["dual_write"] == "on"
    assert row["prepared"] is False  # its own data is ready, its data peers' is not
    assert status_of(stack, "risk-assessment")["prepared"] is False

    # Its data peers (routes.yaml `shares_data_with`) are not prepared: still refused, naming them.
    refused = cm(stack, "shift", "account", "100", ok=False)
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "shares data with integration-hub and notification" in said, said
    assert "`chariot-migrate prepare integration-hub`" in said
    p = subprocess.run([str(CHARIOT_MIGRATE), "prepare", *PEERS, "--routes", str(stack.routes),
                        "--state", stack.state_url], cwd=stack.workdir, env=bare_env(), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert status_of(stack, "risk-assessment")["percent"] == 0  # prepared, still all legacy: a mixed split
    rows = {s: status_of(stack, s) for s in MOVED}
    assert all(r["prepared"] is True for r in rows.values()), json.dumps(rows)

    for service in MOVED:
        cm(stack, "shift", service, "100", "-m", "e2e mixed split")
    time.sleep(1.2)  # every proxy worker polls the state every 0.5 s

    # Data written at 0 % is there on the new side: the demo key (the client authenticates with
    # it through account, now new), the asset.
    assert "#key#" in guard.run("list", "keys").out
    assert guard.json("get", "asset", f"#asset#{before}#10.0.0.1")["status"] == "A"

    # A mixed split: the asset is created on new, the risk on legacy needs it at once.
    during = f"new-{run}.example.com"
    asset = f"#asset#{during}#10.0.0.2"
    guard.run("add", "asset", "-g", during, "-i", "10.0.0.2", "-f", "external")
    guard.run("add", "risk", "CVE-2024-0002", "-a", asset, "-s", "TH", "-c", "asset made on new")
    assert f"#risk#{during}#CVE-2024-0002" in guard.run("list", "risks", "-f", during).lines
    guard.run("update", "asset", asset, "-s", "F")
    assert sdk.assets.get(asset)["status"] == "F"

    # Rollback: everything written on new is on legacy (the legacy table itself, and through the client).
    for service in reversed(MOVED):
        cm(stack, "rollback", service, "-m", "e2e back")
    time.sleep(1.2)
    item = legacy_table(stack).get_item(Key={"username": "demo@example.com", "key": asset}).get("Item")
    assert item is not None and item["status"] == "F", item
    got = guard.json("get", "asset", asset)
    assert got["status"] == "F"
    assert f"#risk#{during}#CVE-2024-0002" in guard.run("list", "risks", "-f", during).lines
    dw = cm_json(stack, "dual-write", "status", "--json")
    assert all(s["dead_letters"] == 0 for s in dw.values()), dw
    history = cm_json(stack, "history", "--json", "-n", "50")
    for service in MOVED:  # prepare's own step is audited like any other
        assert any(h["service"] == service and h["action"] == "dual-write on" and h["reason"] == "prepare"
                   for h in history)


def readme_recipe(name: str) -> list[str]:
    """The ```bash block after `<!-- recipe: NAME -->` in README.md, one command per line."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    after = text.split(f"<!-- recipe: {name} -->", 1)[1]
    block = after.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_recipe_runs_as_written(tmp_path_factory):
    """Every line of the README's safe-migration recipe, in the stack's folder, with no
    environment variables: the line the comment calls refused exits 1, every other one 0."""
    s = start_stack(tmp_path_factory.mktemp("stack-recipe"),
                    StackMode("recipe", services=True, env=(("TABLE_PREFIX", f"rcp{uuid.uuid4().hex[:8]}-"),)))
    try:
        lines = readme_recipe("safe-migration")
        assert lines and all(line.startswith("chariot-migrate ") for line in lines)
        for line in lines:
            args = shlex.split(line, comments=True)[1:]
            p = subprocess.run([str(CHARIOT_MIGRATE), *args, "--routes", str(s.routes), "--state", s.state_url],
                               cwd=s.workdir, env=bare_env(), capture_output=True, text=True, timeout=180)
            want = 1 if "refused" in line.split("#", 1)[-1] else 0
            assert p.returncode == want, f"{line}\n→ {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
            assert "Traceback" not in p.stderr
        doc = cm_json(s, "status", "--json")
        rows = {r["service"]: r for r in doc["services"]}
        assert rows["account"]["percent"] == 100 and rows["asset-discovery"]["percent"] == 0
        assert rows["account"]["prepared"] and rows["asset-discovery"]["prepared"]
    finally:
        s.stop()
