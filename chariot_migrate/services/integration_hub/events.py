"""Events of integration-hub: publishes ``integration.linked`` with the linked row's fields
(member, linked, value, key, updated, role, config — see ``routes.linked_data``) for the account
service's ``#account#`` read model. Inbound webhook imports are normalised into assets and risks
through asset-discovery/risk-assessment's APIs, which publish their own events."""

PUBLISHES = ("integration.linked",)
CONSUMES: tuple[str, ...] = ()
