"""The graph-entity machinery asset-discovery and risk-assessment share: the legacy contract
(errors, write context), entity tables, the ``POST /my`` graph query and its kind cache, peer
sources (read model or the other service's ``/internal/api``), route plumbing, bulk upserts and
one app factory parameterised by the service's kind. Each graph service keeps only its own
rules, tables and routes."""
