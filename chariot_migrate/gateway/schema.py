"""The one schema: every owner's Query and Mutation merged, with the limits every caller gets.

Composed here rather than federated: a federation router would call each subgraph directly and
so bypass the proxy's per-account split; composing at the gateway keeps each resolver's calls on
the proxy's REST routes, where the migration decides which side serves them."""

from __future__ import annotations

import logging
import os
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import DisableIntrospection, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.tools import merge_types
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from . import accounts, assets, jobs, reports, risks, settings
from .api import Fetch, Gateway

MAX_DEPTH = 6
MAX_ALIASES = 15
MAX_TOKENS = 2000

Query = merge_types("Query", (assets.Query, risks.Query, jobs.Query, accounts.Query, reports.Query, settings.Query))
Mutation = merge_types("Mutation", (assets.Mutation, risks.Mutation, jobs.Mutation, settings.Mutation))


log = logging.getLogger("chariot_migrate.graphql")


class GatewaySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # One line per error, no traceback: a REST refusal is the caller's answer, not our fault.
        for e in errors:
            log.info("graphql error at %s: %s", ".".join(map(str, e.path or [])) or "-", e.message)


def build_schema(*, introspection: bool | None = None) -> strawberry.Schema:
    """Introspection is off unless asked for (``CHARIOT_MIGRATE_GRAPHQL_INTROSPECTION=1``; `up` sets it)."""
    if introspection is None:
        introspection = os.environ.get("CHARIOT_MIGRATE_GRAPHQL_INTROSPECTION") == "1"
    extensions: list[Any] = [  # instances, as strawberry documents (its annotation says classes)
        QueryDepthLimiter(max_depth=MAX_DEPTH), MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        MaxTokensLimiter(max_token_count=MAX_TOKENS)]
    if not introspection:
        extensions.append(DisableIntrospection())
    return GatewaySchema(query=Query, mutation=Mutation, extensions=extensions)


def sdl() -> str:
    """The schema as SDL (`chariot-migrate graphql schema`)."""
    return build_schema(introspection=True).as_str()


class Endpoint:
    """What the proxy calls for ``/graphql``: one GraphQL-over-HTTP request in, (status, answer) out.
    ``fetch`` is the proxy's sub-request into its own pipeline, as the caller."""

    def __init__(self, schema: strawberry.Schema | None = None) -> None:
        self.schema = schema or build_schema()

    def sdl(self) -> str:
        return self.schema.as_str()

    async def execute(self, doc: Any, fetch: Fetch, *, read_only: bool) -> tuple[int, dict]:
        if not isinstance(doc, dict) or not isinstance(doc.get("query"), str):
            return 400, {"errors": [{"message": "a GraphQL request is {\"query\": string, \"variables\"?: object, "
                                                "\"operationName\"?: string}"}]}
        variables, op = doc.get("variables"), doc.get("operationName")
        if variables is not None and not isinstance(variables, dict) or op is not None and not isinstance(op, str):
            return 400, {"errors": [{"message": "variables must be an object and operationName a string"}]}
        allowed = {OperationType.QUERY} if read_only else {OperationType.QUERY, OperationType.MUTATION}
        try:
            result = await self.schema.execute(doc["query"], variable_values=variables, operation_name=op,
                                               context_value={"gateway": Gateway(fetch)},
                                               allowed_operation_types=allowed)
        except InvalidOperationTypeError:
            return 405, {"errors": [{"message": "mutations are sent with POST"}]}
        except (CannotGetOperationTypeError, MissingQueryError) as e:
            return 400, {"errors": [{"message": str(e) or type(e).__name__}]}
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        # Not executed at all (syntax, validation, limits): the request was bad. Executed with
        # field errors: 200 with `errors`, as GraphQL over HTTP answers application/json.
        return (400 if isinstance(result, PreExecutionError) else 200), out


def endpoint() -> Endpoint:
    """The factory routes.yaml names (``bff.graphql.endpoint``)."""
    return Endpoint()
