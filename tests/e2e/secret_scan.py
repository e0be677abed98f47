"""Look for known secret values (and any bearer credential or JWT) in everything a stack wrote.

Artefacts hold values in more shapes than plain text: JSON escapes, URL encoding, base64 bodies
(the dual-write outbox), zlib inside base64url (`X-Migrate-Primary-Result: z1.…`), gzip and zip
files, SQLite pages (deleted rows included: freed pages keep their bytes until reused). So a
value is searched for as written, URL-encoded, JSON-escaped and base64/base64url-encoded at every
byte alignment, and compressed or base64 data is decoded and searched again.

A finding names the secret by its label and the artefact by its path — never the value, so a
failing test cannot leak what it looked for.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import re
import shutil
import sqlite3
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

# A bearer credential or a JWT that is not a redaction marker. Generic: catches credentials the
# test never saw (service-to-service tokens, the replay identity's token).
PATTERNS = {
    "bearer credential": re.compile(rb"\bBearer\s+(?!\[REDACTED)(?!<)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE),
    "JWT": re.compile(rb"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"),
}
_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{40,}={0,2}")
_ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")
_MAX_DEPTH = 3


@dataclass(frozen=True)
class Finding:
    artefact: str  # path (and member / decoding steps) or command
    secret: str  # the label of the secret, or of the pattern that matched
    form: str  # how it was written: raw, url, json, base64, base64url

    def __str__(self) -> str:
        return f"{self.secret} ({self.form}) in {self.artefact}"


def base64_forms(value: bytes) -> dict[str, list[bytes]]:
    """The characters that encode ``value`` wherever it sits in a longer base64 stream: one
    needle per alignment (0, 1 or 2 bytes before it), without the edge characters shared with
    the neighbours."""
    forms: dict[str, list[bytes]] = {"base64": [], "base64url": []}
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + value + b"\0\0\0")
        start, end = -(-8 * pad // 6), (8 * (pad + len(value))) // 6
        needle = enc[start:end]
        forms["base64"].append(needle)
        forms["base64url"].append(needle.translate(bytes.maketrans(b"+/", b"-_")))
    return forms


def needles_of(value: str) -> list[tuple[str, bytes]]:
    raw = value.encode()
    out = [("raw", raw), ("url", quote(value, safe="").encode()),
           ("json", json.dumps(value, ensure_ascii=True)[1:-1].encode())]
    for form, needles in base64_forms(raw).items():
        out += [(form, n) for n in needles if len(n) >= 12]
    seen: set[bytes] = set()
    return [(f, n) for f, n in out if not (n in seen or seen.add(n))]  # type: ignore[func-returns-value]


@dataclass
class SecretScanner:
    """``secrets``: label → value. ``scan_*`` return findings; ``units`` counts what was read
    per artefact (lines of text, rows of a SQLite database, members of an archive)."""

    secrets: dict[str, str]
    patterns: dict[str, re.Pattern[bytes]] = field(default_factory=lambda: dict(PATTERNS))
    units: dict[str, int] = field(default_factory=dict)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # SQLite file → rows per table

    def __post_init__(self) -> None:
        short = [label for label, v in self.secrets.items() if len(v) < 12]
        if short:  # a short needle matches by accident: the scan would cry wolf
            raise ValueError(f"secrets too short to search for reliably: {short}")
        self._needles = {label: needles_of(v) for label, v in self.secrets.items()}

    # ---- bytes --------------------------------------------------------------------------------

    def scan_bytes(self, data: bytes, where: str, depth: int = 0) -> list[Finding]:
        found: list[Finding] = []
        for label, needles in self._needles.items():
            for form, needle in needles:
                if needle in data:
                    found.append(Finding(where, label, form))
                    break
        for label, pattern in self.patterns.items():
            if pattern.search(data):
                found.append(Finding(where, label, "raw"))
        if depth < _MAX_DEPTH:
            found += self._scan_decoded(data, where, depth + 1)
        return found

    def _scan_decoded(self, data: bytes, where: str, depth: int) -> list[Finding]:
        found: list[Finding] = []
        if data[:2] == b"\x1f\x8b":
            try:
                found += self.scan_bytes(gzip.decompress(data), f"{where} [gunzip]", depth)
            except (OSError, EOFError, zlib.error):
                pass
        elif data[:4] == b"PK\x03\x04":
            found += self._scan_zip(data, where, depth)
        elif data[:2] in _ZLIB_HEADERS:
            try:
                found += self.scan_bytes(zlib.decompress(data), f"{where} [inflate]", depth)
            except zlib.error:
                pass
        for run in _B64_RUN.findall(data):
            decoded = _b64decode(run)
            if decoded is None:
                continue
            # Only what decodes to compressed data or text: random bytes cannot hold a readable secret.
            if decoded[:2] in _ZLIB_HEADERS or decoded[:2] == b"\x1f\x8b" or decoded[:4] == b"PK\x03\x04" \
                    or _texty(decoded):
                found += self.scan_bytes(decoded, f"{where} [base64]", depth)
        return found

    def _scan_zip(self, data: bytes, where: str, depth: int) -> list[Finding]:
        found: list[Finding] = []
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for name in z.namelist():
                    self.units[f"{where}!{name}"] = 1
                    found += self.scan_bytes(z.read(name), f"{where}!{name}", depth)
        except (zipfile.BadZipFile, zlib.error, OSError):
            pass
        return found

    def scan_text(self, text: str, where: str) -> list[Finding]:
        self.units[where] = len([line for line in text.splitlines() if line.strip()])
        return self.scan_bytes(text.encode("utf-8", "surrogateescape"), where)

    # ---- files --------------------------------------------------------------------------------

    def scan_file(self, path: Path) -> list[Finding]:
        data = path.read_bytes()
        where = str(path)
        found: list[Finding] = []
        if data.startswith(b"SQLite format 3\x00"):
            # Live rows cell by cell (a value may span overflow pages), and the raw file below
            # for what deleted rows left on free pages.
            tables, cells = _sqlite_dump(path)
            self.tables[where], self.units[where] = tables, sum(tables.values())
            for table, cell in cells:
                found += self.scan_bytes(cell, f"{where} [{table}]")
        elif data[:4] == b"PK\x03\x04" or data[:2] == b"\x1f\x8b":
            self.units.setdefault(where, 1)
        else:
            self.units[where] = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        return found + self.scan_bytes(data, where)

    def scan_tree(self, root: Path, skip: Callable[[Path], bool] = lambda p: False) -> list[Finding]:
        found: list[Finding] = []
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and not skip(path):
                found += self.scan_file(path)
        return found

    def units_of(self, paths: Iterable[str]) -> int:
        return sum(self.units.get(p, 0) for p in paths)


def _b64decode(run: bytes) -> bytes | None:
    try:
        if b"-" in run or b"_" in run:
            return base64.urlsafe_b64decode(run + b"=" * (-len(run) % 4))
        return base64.b64decode(run + b"=" * (-len(run) % 4))
    except (binascii.Error, ValueError):
        return None


def _texty(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text)


def _sqlite_dump(path: Path) -> tuple[dict[str, int], list[tuple[str, bytes]]]:
    """Rows per table and every text/blob cell, read from a copy (with its WAL, where recent
    writes live) so the live database is untouched."""
    tables: dict[str, int] = {}
    cells: list[tuple[str, bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        db = sqlite3.connect(copy)
        try:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
                tables[table] = len(rows)
                for row in rows:
                    for v in row:
                        if isinstance(v, str):
                            cells.append((table, v.encode("utf-8", "surrogateescape")))
                        elif isinstance(v, bytes):
                            cells.append((table, v))
        except sqlite3.DatabaseError:
            pass
        finally:
            db.close()
    return tables, cells
