"""File path rules shared by the legacy file function and the reporting service (pure)."""

from __future__ import annotations

from .errors import bad_request

MAX_NAME = 1024


def file_name_problem(name: str | None) -> str | None:
    """Why ``name`` cannot be a file path, or None when it can."""
    if not name:
        return "query parameter 'name' is required (the file path, e.g. home/report.pdf)"
    if name.startswith("/") or ".." in name.split("/") or "\x00" in name or len(name) > MAX_NAME:
        return f"invalid file name {name!r}: use a relative path without '..'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        # S3 keys with control characters break URLs and XML listings.
        return f"invalid file name {name!r}: control characters are not allowed"
    return None


def object_key(username: str, name: str) -> str:
    """Where a file's bytes live in the bucket."""
    return f"{username}/{name}"


def checked_name(name: str | None) -> str:
    """``name`` when it can be a file path, else the 400 naming why (:func:`file_name_problem`)."""
    problem = file_name_problem(name)
    if problem or name is None:
        raise bad_request(problem or "a file name is required")
    return name
