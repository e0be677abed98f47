"""The GraphQL layer over the eight services, composed at the gateway (the proxy serves it at
``/graphql`` when routes.yaml names ``bff.graphql.schema``). Each module holds the types and
resolvers of one owning service; every resolver reads and writes through that service's REST
routes *through the proxy*, as the caller, so the strangler split, sticky buckets, shadow and dual
write apply to GraphQL exactly as to REST. Nothing here imports a service or the legacy stack."""
