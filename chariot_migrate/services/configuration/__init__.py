"""The configuration service (phase 8): settings, configurations, feature flags, ``GET /schema``."""
