"""No secret in any artefact: the whole stack runs with every artefact kind switched on, the test
mints and uses real credentials through the real `guard` CLI and httpx, then reads back every file
the stack wrote (and every command's output) looking for them.

Issue 8: "no secret, token or Authorization value may ever appear in logs, diffs, captures,
reports or error messages." Artefacts made here: the proxy's access log, the eight services' logs,
shadow diffs at 100 % for account / asset-discovery / notification and the replay comparisons of
dual writes (the diff store, and `report` in table, json, md and html), request capture
(`CHARIOT_MIGRATE_CAPTURE`) and its `replay` report, the dual-write outbox, `plan`, `phase-report`
(md, html), `data backfill` / `data verify` (and its kept result), `status`, `history`, `diffs`,
`dual-write status`, and `up`'s own output. Secrets made here: API-key secrets (the demo key, one
minted with `guard add key`, one with POST /key, a mistyped one), the JWTs GET /token answered,
the webhook pin, the proxy's admin and operator tokens, and the RS256 signing key.

Files whose purpose is to hold a credential are not artefacts and are skipped: `demo.env` (the
hand-off of the demo key, mode 0600), `<state dir>/admin.token` (0600) and the guard
client's HOME (its keychain and token cache).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import secrets
import shutil
import signal
import stat
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import boto3
import httpx
import pytest
from guard_harness import CHARIOT_MIGRATE, Guard, Stack, StackMode, parallel, start_stack, wait_for
from real_stack_kit import REGION, cli_env, routes_copy
from secret_scan import Finding, SecretScanner

from chariot_migrate.legacy import aws

E2E = [pytest.mark.e2e, pytest.mark.integration]


# ---- the scanner itself -------------------------------------------------------------------------


def test_scanner_finds_a_planted_secret_in_every_form(tmp_path):
    """The scan can fail: a secret planted raw, URL-encoded, in base64 (at any alignment), in a
    `z1.` zlib header value, in a gzip file, in a zip member and in a SQLite row (and a deleted
    one) is found; a redacted artefact and a different value are not."""
    import sqlite3

    secret = secrets.token_urlsafe(32)
    url_secret = base64.b64encode(secrets.token_bytes(30)).decode() + "/+"  # changes when URL-encoded
    scanner = SecretScanner({"planted": secret, "planted (url)": url_secret})
    (tmp_path / "clean.log").write_text('{"authorization": "[REDACTED]", "msg": "Bearer [REDACTED]"}\n'
                                        + secrets.token_urlsafe(32) + "\n")
    (tmp_path / "raw.log").write_text(f'{{"msg": "x-guard-api-key-secret: {secret}"}}\n')
    (tmp_path / "url.txt").write_text("GET /x?k=" + quote(url_secret, safe="") + "\n")
    for pad in range(3):  # base64 of a body that holds the secret at each byte alignment
        body = json.dumps({"p": "x" * pad, "secret": secret}).encode()
        (tmp_path / f"outbox-{pad}.json").write_text(json.dumps({"body": base64.b64encode(body).decode()}))
    header = "z1." + base64.urlsafe_b64encode(__import__("zlib").compress(secret.encode())).decode().rstrip("=")
    (tmp_path / "header.txt").write_text(f"x-migrate-primary-result: {header}\n")
    (tmp_path / "export.gz").write_bytes(gzip.compress(f"name,{secret}\n".encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("report/assets.csv", f"a,b\n1,{secret}\n")
    (tmp_path / "export.zip").write_bytes(buf.getvalue())
    db = sqlite3.connect(tmp_path / "store.db")
    db.execute("CREATE TABLE t (v TEXT)")
    db.execute("INSERT INTO t VALUES (?)", ("padding " * 600 + secret,))  # spans an overflow page
    db.commit()
    db.close()
    gone = sqlite3.connect(tmp_path / "deleted.db")
    gone.execute("PRAGMA secure_delete = 0")  # as SQLite builds without SECURE_DELETE leave freed pages
    gone.execute("CREATE TABLE t (v TEXT)")
    gone.execute("INSERT INTO t VALUES (?)", (secret,))
    gone.commit()
    gone.execute("DELETE FROM t")
    gone.commit()
    gone.close()

    found = {Path(f.artefact.split(" [")[0].split("!")[0]).name for f in scanner.scan_tree(tmp_path)}
    assert found == {"raw.log", "url.txt", "outbox-0.json", "outbox-1.json", "outbox-2.json", "header.txt",
                     "export.gz", "export.zip", "store.db", "deleted.db"}
    assert scanner.tables[str(tmp_path / "store.db")] == {"t": 1}
    assert scanner.units[str(tmp_path / "clean.log")] == 2
    # Bearer credentials and JWTs nobody told the scanner about are findings too.
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4QHkuY29tIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    assert {f.secret for f in scanner.scan_text(f"authorization: Bearer {jwt}", "cmd")} == {"bearer credential",
                                                                                            "JWT"}
    assert scanner.scan_text("Authorization: Bearer [REDACTED]", "cmd") == []
    # A finding never carries the value.
    assert all(secret not in str(f) for f in scanner.scan_tree(tmp_path))
    with pytest.raises(ValueError):
        SecretScanner({"short": "abc"})


# ---- the stack ----------------------------------------------------------------------------------


@dataclass
class Run:
    """Every command's output (the product's and the client's) and every secret made so far."""

    stack: Stack = field(repr=False)
    prefix: str  # TABLE_PREFIX: this stack's tables, Redis streams and cache keys
    # Never in a repr: pytest prints fixtures of a failing test.
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    minted_key: tuple[str, str] = field(default=("", ""), repr=False)  # (id, secret) from POST /key
    outputs: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (what ran, stdout + stderr)

    def label(self, program: str, args: tuple[str, ...]) -> str:
        """The command line for a message, with the secrets in its arguments named, not shown."""
        text = " ".join((program, *args))
        for name, value in list(self.secrets.items()):  # traffic runs in threads: copy first
            text = text.replace(value, f"<{name}>")
        return text

    def cm(self, *args: str, state: bool = True, routes: bool = True, env: dict[str, str] | None = None,
           ok: bool = True) -> subprocess.CompletedProcess:
        extra = (["--routes", str(self.stack.routes)] if routes else []) + (
            ["--state", self.stack.state_url] if state else [])
        env = {**cli_env(self.stack), "TABLE_PREFIX": self.prefix, **(env or {})}
        p = subprocess.run([str(CHARIOT_MIGRATE), *args, *extra], cwd=self.stack.workdir, env=env,
                           capture_output=True, text=True, timeout=120)
        what = self.label("chariot-migrate", args)
        self.outputs.append((what, p.stdout + p.stderr))
        if ok:
            assert p.returncode == 0, f"{what} → {p.returncode}"  # its output is scanned, not shown
        return p

    def guard(self, g: Guard, *args: str, shows_secret: bool = False) -> str:
        """`guard ARGS`. A command whose job is to show a new credential once (`add key`, `add
        webhook`) prints it on stdout by design: only its stderr counts as an artefact."""
        res = g.run(*args)
        self.outputs.append((self.label("guard", args), res.err if shows_secret else res.out + res.err))
        return res.out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Iterator[Run]:
    work = tmp_path_factory.mktemp("secrets")
    routes = routes_copy(work / "routes.yaml", {
        "shadow": {"noise_sample_rate": 1.0, "flush_interval_s": 0.2},
        # The proxy only appends: the writes wait in the outbox until the test has read it, then a
        # standalone `dual-write worker` delivers them.
        "dual_write": {"worker": False},
        "services": {"account": {"shadow_percent": 100, "dual_write": "on"},
                     "asset-discovery": {"shadow_percent": 100, "dual_write": "on"},
                     "notification": {"dual_write": "on"},  # webhook rows (the pin) go through the outbox
                     "integration-hub": {"dual_write": "on"}}})  # webhook calls too, and are compared
    operator_token, prefix = secrets.token_urlsafe(24), f"sec{secrets.token_hex(4)}-"
    env = (("CHARIOT_MIGRATE_CAPTURE", str(work / "capture" / "capture.jsonl")),
           ("CHARIOT_MIGRATE_OPERATOR_TOKEN", operator_token), ("TABLE_PREFIX", prefix))
    stack = start_stack(work, StackMode("secrets", services=True, env=env), routes=routes)
    r = Run(stack, prefix, {"operator token": operator_token})
    try:
        yield r
    finally:
        stack.stop()
        _clean_redis(prefix)


def _clean_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # no Redis: the services ran on their in-process bus
    finally:
        client.close()


def _signing_key_line(stack: Stack) -> str:
    """One full line of the RS256 private key's PEM body (a secret no artefact may hold)."""
    sm = boto3.client("secretsmanager", endpoint_url=stack.moto, region_name=REGION,
                      aws_access_key_id="local", aws_secret_access_key="local")
    pem = json.loads(sm.get_secret_value(SecretId=aws.secret_id())["SecretString"])["private_pem"]
    return pem.splitlines()[5]


def _make_traffic(r: Run, home: Path) -> None:
    stack = r.stack
    admin_token = (stack.state_dir / "admin.token").read_text().strip()
    admin_url = f"http://127.0.0.1:{stack.info['admin_port']}"
    r.secrets.update({"demo API key secret": stack.env["PRAETORIAN_CLI_API_KEY_SECRET"], "admin token": admin_token,
                      "signing key": _signing_key_line(stack)})
    guard = Guard(stack, home)
    # Services start shadowed and dual-written as routes.yaml says; notification's shadow is
    # switched on through the admin API, the token travelling in the CLI's environment. The keys
    # exist on the new side too, so GET /token answers (JWTs) get compared.
    parallel(lambda: r.cm("shadow", "notification", "100", "--admin-url", admin_url, "-m", "e2e: compare reads",
                          state=False, env={"CHARIOT_MIGRATE_ADMIN_TOKEN": admin_token}),
             lambda: r.cm("data", "backfill", "account", state=False),
             lambda: r.guard(guard, "list", "keys"))  # a token for the demo key (X-GUARD-API-KEY-SECRET)
    minted, hook, _ = parallel(lambda: r.guard(guard, "add", "key", "-n", "scan-cli", "-e", "30", shows_secret=True),
                               lambda: r.guard(guard, "add", "webhook", shows_secret=True),
                               lambda: r.guard(guard, "add", "asset", "-g", "scan.example.com", "-i", "10.7.7.7"))
    r.secrets["API key secret (guard add key)"] = re.search(r"it will not be shown again\): (\S+)", minted).group(1)
    r.secrets["webhook pin"] = pin = hook.strip().splitlines()[-1].rsplit("/", 1)[-1]
    parallel(lambda: r.guard(guard, "list", "assets", "--details"), lambda: _use_credentials(r, pin))
    r.secrets["wrong admin token"] = admin_token[::-1]
    with httpx.Client(base_url=admin_url, timeout=10) as admin:
        expect(200, admin.get("/state", headers={"Authorization": f"Bearer {admin_token}"}), "admin GET /state")
        expect(401, admin.get("/state", headers={"Authorization": f"Bearer {admin_token[::-1]}"}),
               "a wrong admin token")


def expect(status: int, response: httpx.Response, what: str) -> httpx.Response:
    """Check a status without echoing the request in the failure (its headers hold credentials)."""
    got = response.status_code
    assert got == status, f"{what}: HTTP {got}"
    return response


def _use_credentials(r: Run, pin: str) -> None:
    """Tokens, a minted key, wrong credentials, the webhook, an operator override: through httpx."""
    stack = r.stack
    demo = {"X-GUARD-API-KEY-ID": stack.env["PRAETORIAN_CLI_API_KEY_ID"],
            "X-GUARD-API-KEY-SECRET": stack.env["PRAETORIAN_CLI_API_KEY_SECRET"]}
    with httpx.Client(base_url=stack.api, timeout=30) as http:
        jwt = expect(200, http.get("/token", headers=demo), "GET /token").json()["token"]
        r.secrets["JWT (demo key)"] = jwt
        auth = {"Authorization": f"Bearer {jwt}"}
        made = expect(200, http.post("/key", json={"name": "scan-http"}, headers=auth), "POST /key").json()
        key_id, key_secret = made["id"], made["secret"]
        r.secrets["API key secret (POST /key)"] = key_secret
        r.minted_key = (key_id, key_secret)
        minted = {"X-GUARD-API-KEY-ID": key_id, "X-GUARD-API-KEY-SECRET": key_secret}
        jwt2 = expect(200, http.get("/token", headers=minted), "GET /token with the minted key").json()["token"]
        r.secrets["JWT (minted key)"] = jwt2
        auth2 = {"Authorization": f"Bearer {jwt2}"}
        # A mistyped secret is still a secret; so is a tampered token (it holds a real one).
        wrong = key_secret[::-1]
        r.secrets["mistyped API key secret"] = wrong
        expect(401, http.get("/token", headers={"X-GUARD-API-KEY-ID": key_id, "X-GUARD-API-KEY-SECRET": wrong}),
               "GET /token with a mistyped secret")
        expect(401, http.get("/my", params={"key": "#key#"}, headers={"Authorization": f"Bearer {jwt2}x"}),
               "a tampered token")
        for key in ("#key#", "#account#"):  # account reads (shadowed): the keys, the webhook row
            expect(200, http.get("/my", params={"key": key}, headers=auth2), f"GET /my?key={key}")
        expect(200, http.post("/my", json={"node": {"labels": ["Asset"]}}, headers=auth2), "POST /my")
        expect(200, http.get("/account/alert", headers=auth), "GET /account/alert")
        expect(200, http.put("/asset", json={"dns": "scan.example.org", "name": "scan.example.org", "status": "A"},
                             headers=auth2), "PUT /asset")
        # The webhook, used the way an integration does: the pin is the credential, in the path.
        principal = base64.b64encode(b"demo@example.com").decode().rstrip("=")
        expect(200, http.put(f"/hook/{principal}/{pin}", json={"dns": "hook.example.com", "name": "10.8.8.8"}),
               "PUT /hook/{principal}/{pin}")
        # A credential in the query string, and the operator override with its token.
        http.get("/my", params={"key": "#asset#", "token": jwt2}, headers=auth2)
        forced = expect(200, http.get("/my", params={"key": "#key#"}, headers={
            **auth2, "X-Migrate-Target": "new", "X-Migrate-Token": r.secrets["operator token"]}), "operator override")
        # (Served by legacy all the same: the account's writes toward new wait in the outbox.)
        assert forced.headers.get("x-migrate-side") == "legacy"


def _outbox_while_pending(r: Run) -> Path:
    """A copy of the outbox holding undelivered writes (scanned with everything else), then the
    writes delivered by a standalone worker."""
    store, snapshot = r.stack.state_dir, r.stack.workdir / "outbox-pending"
    snapshot.mkdir()
    for name in ("outbox.db", "outbox.db-wal"):
        if (store / name).exists():
            shutil.copyfile(store / name, snapshot / name)
    with open(r.stack.workdir / "dual-write-worker.log", "w") as log:
        worker = subprocess.Popen([str(CHARIOT_MIGRATE), "dual-write", "worker", "--routes", str(r.stack.routes)],
                                  cwd=r.stack.workdir, env={**cli_env(r.stack), "TABLE_PREFIX": r.prefix},
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        r.cm("dual-write", "drain", "--timeout", "30", state=False)
    finally:
        worker.send_signal(signal.SIGINT)  # Ctrl-C: its clean stop
        try:
            worker.wait(15)
        finally:
            if worker.poll() is None:  # never leak it into the rest of the session
                worker.kill()
                worker.wait()
    # The key minted through legacy reached the account service as a salted hash, not as its
    # secret — and the secret works there all the same.
    key_id, key_secret = r.minted_key
    account = f"http://127.0.0.1:{r.stack.info['services']['service-account']}"
    minted = {"X-GUARD-API-KEY-ID": key_id, "X-GUARD-API-KEY-SECRET": key_secret}
    expect(200, httpx.get(f"{account}/token", headers=minted, timeout=30), "the minted key on the account service")
    return snapshot / "outbox.db"


def _make_reports(r: Run) -> Path:
    stack, out = r.stack, r.stack.workdir / "reports"
    out.mkdir()
    wait_for(lambda: sum(rt["pairs"] for s in json.loads(r.cm("report", "--format", "json", state=False).stdout)
                         ["services"] for rt in s["routes"]) >= 8, timeout=30, what="shadow pairs recorded")
    capture = str(stack.workdir / "capture" / "capture.jsonl")
    bearer = f"Authorization: Bearer {r.secrets['JWT (minted key)']}"
    # Replayed at a "new build" (the account service), as in CI: a replay re-sends writes, and the
    # live stack must not get the redacted ones (a webhook whose pin is "[REDACTED]").
    build = f"http://127.0.0.1:{stack.info['services']['service-account']}"
    live = {"routes": True, "state": True}  # commands that read the live state
    files = {"routes": True, "state": False}  # commands that read the stores routes.yaml names
    no_config = {"routes": False, "state": False}
    jobs = [(("report",), files), (("report", "--format", "json", "-o", str(out / "shadow.json")), files),
            (("report", "--format", "md", "-o", str(out / "shadow.md")), files),
            (("report", "--format", "html", "-o", str(out / "shadow.html")), files), (("diffs",), files),
            (("status",), live), (("history",), live), (("plan",), live),
            (("phase-report", "account", "--format", "md", "-o", str(out / "phase-account.md")), live),
            (("phase-report", "account", "--format", "html", "-o", str(out / "phase-account.html")), live),
            (("data", "verify", "account", "--json"), {**files, "ok": False}),  # exit 1 on drift is fine here
            (("dual-write", "status", "--json"), files), (("dual-write", "dead"), files),
            (("replay", capture, "--against", build, "-H", bearer, "--format", "json", "-o", str(out / "replay.json")),
             no_config),
            (("replay", capture, "--against", build, "-H", bearer, "--format", "md"), no_config)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda job: r.cm(*job[0], **job[1]), jobs))
    return out


def _outbox_payload(finding: Finding) -> bool:
    """The outbox is the write itself, waiting for the other side: a new webhook's pin is part of
    it (the other side must accept the same pin), and both sides' tables keep the pin as it is, as
    the API returns it. A minted API key's secret is not (the outbox keeps its salted hash, as the
    tables do), and the pin anywhere else is a leak."""
    return finding.secret == "webhook pin" and Path(finding.artefact.split(" [")[0]).name.startswith("outbox.db")


def _skipped(stack: Stack, homes: list[Path]) -> Callable[[Path], bool]:
    credential_files = {stack.state_dir / "demo.env", stack.state_dir / "admin.token"}

    def skip(path: Path) -> bool:
        return path in credential_files or any(path.is_relative_to(h) for h in homes)

    return skip


@pytest.mark.e2e
@pytest.mark.integration
def test_no_secret_reaches_any_artefact(run, tmp_path_factory):
    stack = run.stack
    home = tmp_path_factory.mktemp("home-secrets")
    _make_traffic(run, home)
    pending_outbox = _outbox_while_pending(run)
    reports = _make_reports(run)
    run.outputs.append(("chariot-migrate up (stdout)", "".join(stack.stdout)))
    stack.stop()  # every process flushes its logs and closes its stores
    run.outputs.append(("chariot-migrate up (stderr)", stack.log.read_text()))

    # The credential files themselves are private.
    for path in (stack.state_dir / "demo.env", stack.state_dir / "admin.token"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    scanner = SecretScanner(run.secrets)
    t0 = time.monotonic()
    findings = scanner.scan_tree(stack.workdir, skip=_skipped(stack, [home]))
    for what, text in run.outputs:
        findings += scanner.scan_text(text, f"output of `{what}`")
    scan_s = time.monotonic() - t0
    findings = sorted({f for f in findings if not _outbox_payload(f)}, key=str)
    assert not findings, "secrets found:\n" + "\n".join(map(str, findings))

    # The scan really read every artefact kind (counted, so an artefact that stops being written
    # — or moves — fails the test instead of passing it vacuously).
    logs = stack.state_dir / "logs"
    access = [line for line in (logs / "proxy.log").read_text().splitlines() if '"chariot_migrate.access"' in line]
    service_logs = sorted(str(p) for p in logs.glob("service-*.log"))
    store = stack.workdir / ".chariot-migrate"
    coverage = {
        "access log lines": len(access),
        "service log lines": scanner.units_of(service_logs),
        "services with a log": len(service_logs),
        "diff examples": scanner.tables[str(store / "shadow.db")].get("examples", 0),
        "diff signatures": scanner.tables[str(store / "shadow.db")].get("sig_counts", 0),
        "capture records": scanner.units[str(stack.workdir / "capture" / "capture.jsonl")],
        "undelivered writes in the outbox": scanner.tables[str(pending_outbox)].get("outbox_records", 0),
        "outbox lanes": scanner.tables[str(stack.state_dir / "outbox.db")].get("outbox_lanes", 0),
        "report files": len([p for p in reports.iterdir() if scanner.units.get(str(p), 0) > 0]),
        "kept verify results": scanner.tables.get(str(stack.state_dir / "state.db"), {}).get("records", 0),  # state store
        "command outputs": len(run.outputs),
        "secrets looked for": len(run.secrets),
    }
    expected = {"access log lines": 15, "service log lines": 20, "services with a log": 8, "diff examples": 1,
                "diff signatures": 1, "capture records": 15, "undelivered writes in the outbox": 5, "outbox lanes": 2,
                "report files": 6, "kept verify results": 1, "command outputs": 25, "secrets looked for": 11}
    short = {k: (coverage[k], v) for k, v in expected.items() if coverage[k] < v}
    assert not short, f"artefact kinds not covered (found, wanted at least): {short}"
    print(f"scanned {len(scanner.units)} artefacts in {scan_s:.1f}s: {coverage}")
