"""deploy/Dockerfile: hadolint-clean, multi-stage, non-root, pinned, and buildable from this tree."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
BIN = Path(sys.executable).parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} missing: pip install -e '.[dev]'")
    return path


def test_hadolint_reports_nothing() -> None:
    out = subprocess.run([_tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


def test_hadolint_is_not_vacuous(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    out = subprocess.run([_tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "DL3007" in out.stdout


def test_multi_stage_with_pinned_base() -> None:
    froms = [args for word, args in instructions() if word == "FROM"]
    assert len(froms) == 2
    assert froms[0] == "python:3.11.7-slim-bookworm AS builder"
    assert froms[1] == "python:3.11.7-slim-bookworm AS runtime"
    copies_from_builder = [a for w, a in instructions() if w == "COPY" and a.startswith("--from=builder")]
    assert copies_from_builder == ["--from=builder /opt/venv /opt/venv"], "runtime takes only the venv"


def test_runtime_is_non_root_without_healthcheck_and_uses_the_entrypoint() -> None:
    ins = instructions()
    runtime = ins[[i for i, (w, _) in enumerate(ins) if w == "FROM"][1]:]
    users = [a for w, a in runtime if w == "USER"]
    assert users == ["10001"]
    user_at = next(i for i, (w, _) in enumerate(runtime) if w == "USER")
    assert all(w != "RUN" for w, _ in runtime[user_at:]), "nothing runs as root after USER"
    assert ("HEALTHCHECK", "NONE") in runtime
    assert ("ENTRYPOINT", '["chariot-entrypoint"]') in runtime
    assert ("CMD", '["proxy"]') in runtime


def _dockerignored(rel: str, patterns: list[str]) -> bool:
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        hit = fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat + "/*") or \
            (pat.startswith("**/") and fnmatch.fnmatch(Path(rel).name, pat[3:]))
        if hit:
            ignored = not neg
    return ignored


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    for word, args in instructions():
        if word != "COPY" or "--from=" in args:
            continue
        parts = [p for p in args.split() if not p.startswith("--")]
        for src in parts[:-1]:
            assert (REPO / src).exists(), (
                f"COPY {src}: missing from the repository"
                + (" (pyproject's readme= also needs it to build the wheel)" if src == "README.md" else ""))
            assert not _dockerignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
    assert _dockerignored(".venv", patterns) and _dockerignored("tests", patterns)
    assert _dockerignored("chariot_migrate/x/__pycache__", patterns)


def test_entrypoint_is_executable_in_image_and_in_tree() -> None:
    copy = next(a for w, a in instructions() if w == "COPY" and "entrypoint.sh" in a)
    assert "--chmod=0755" in copy and copy.endswith("/usr/local/bin/chariot-entrypoint")
    assert (REPO / "deploy" / "entrypoint.sh").stat().st_mode & 0o111
