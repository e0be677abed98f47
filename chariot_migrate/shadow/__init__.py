"""Shadow comparison: normalisation, structural diff, noise model, diff store, engine, reports."""

from .capture import CaptureWriter, read_capture, replay, replay_async
from .compare import Comparison, SignatureHit, compare_pair
from .config import ShadowConfig
from .diff import Difference, collapse, diff, signature_id, value_class
from .engine import SHADOW_HEADER, ShadowEngine, ShadowJob
from .ignores import IgnoreRule, add_ignore, load_ignores
from .noise import PathCounts, adjusted_match_rate, classify
from .normalise import NormalisedResponse, NormaliseRules, from_http, normalise
from .report import Report, build_report, render_html, render_json, render_markdown, render_table
from .store import DiffStore, RedisDiffStore, SQLiteDiffStore, open_diff_store

__all__ = [
    "SHADOW_HEADER",
    "CaptureWriter",
    "ShadowConfig",
    "read_capture",
    "replay",
    "replay_async",
    "Comparison",
    "Difference",
    "DiffStore",
    "IgnoreRule",
    "NormaliseRules",
    "NormalisedResponse",
    "PathCounts",
    "RedisDiffStore",
    "Report",
    "SQLiteDiffStore",
    "ShadowEngine",
    "ShadowJob",
    "SignatureHit",
    "add_ignore",
    "adjusted_match_rate",
    "build_report",
    "classify",
    "collapse",
    "compare_pair",
    "diff",
    "from_http",
    "load_ignores",
    "normalise",
    "open_diff_store",
    "render_html",
    "render_json",
    "render_markdown",
    "render_table",
    "signature_id",
    "value_class",
]
