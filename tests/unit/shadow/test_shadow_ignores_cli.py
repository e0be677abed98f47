"""`diffs ignore` records the rule in the state store; the file is the reviewed export/import."""

import contextlib

from typer.testing import CliRunner

from chariot_migrate.cli.main import app
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.shadow.ignores import store_ignores


def test_diffs_ignore_writes_the_store_and_the_export_file_and_import_round_trips(tmp_path):
    state = f"sqlite:///{tmp_path}/st/state.db"
    with contextlib.chdir(tmp_path):
        r = CliRunner().invoke(app, ["diffs", "ignore", "abcdefabcdef", "--reason", "[ops-1] ids", "--state", state])
        assert r.exit_code == 0, r.output
        assert "[ops-1] ids" in (tmp_path / "shadow-ignores.yaml").read_text()
        s = open_state_store(state)
        assert [(x.signature, x.reason) for x in store_ignores(s)] == [("abcdefabcdef", "[ops-1] ids")]
        (tmp_path / "shadow-ignores.yaml").unlink()
        r = CliRunner().invoke(app, ["diffs", "export-ignores", "out.yaml", "--state", state])
        assert r.exit_code == 0 and "abcdefabcdef" in (tmp_path / "out.yaml").read_text()
        (tmp_path / "in.yaml").write_text("ignores:\n  - {signature: '111111111111', reason: reviewed}\n")
        r = CliRunner().invoke(app, ["diffs", "import-ignores", "in.yaml", "--state", state])
        assert r.exit_code == 0, r.output
        assert {x.signature for x in store_ignores(s)} == {"abcdefabcdef", "111111111111"}
        s.close()
