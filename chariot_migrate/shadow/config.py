"""The ``shadow:`` section of ``routes.yaml`` (kept as raw data by the core file model).

```yaml
shadow:
  store: sqlite:///.chariot-migrate/shadow.db     # or redis://127.0.0.1:6379/0
  noise_sample_rate: 0.1     # share of shadowed reads whose primary is called twice (A/A)
  rules: {ignore: ["**.requestId"], timestamps: true}   # global normalisation
  routes:                    # per route id (RouteConfig.route_id / name): merged over the global rules
    "GET /asset": {unordered: ["$.assets"]}
```
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .noise import DEFAULT_MIN_SAMPLES
from .normalise import NormaliseRules
from .store import DEFAULT_SQLITE_PATH


class ShadowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    noise_sample_rate: float = Field(0.1, ge=0, le=1)
    concurrency: int = Field(8, ge=1, le=1024)
    queue_size: int = Field(1000, ge=1)
    flush_interval_s: float = Field(0.5, gt=0)
    max_examples: int = Field(5, ge=0, le=1000)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    min_samples: int = Field(DEFAULT_MIN_SAMPLES, ge=1)
    rules: NormaliseRules = NormaliseRules()
    routes: dict[str, NormaliseRules] = Field(default_factory=dict)
    _merged: dict[str, NormaliseRules] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> ShadowConfig:
        return cls.model_validate(section or {})

    def rules_for(self, route_id: str) -> NormaliseRules:
        """Global rules merged with the route's own (lists add up, the route's scalars win)."""
        rules = self._merged.get(route_id)
        if rules is None:  # merged once per route: the compiled path patterns are cached on it
            rules = self._merged[route_id] = self.rules.merge(self.routes.get(route_id))
        return rules
