"""risk-assessment's view of asset-discovery's entities over its gRPC API
(``GetAssetRelationships``; ``kit/proto/asset_discovery.proto``), instead of its HTTP
``/internal/api``. A peer source like :class:`~chariot_migrate.services.kit.graph.peers.HttpPeerSource`:
a failed call (after the retries, or with the breaker open) is :class:`PeerUnavailable`, and the
graph app then answers from the read model (logged)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc

from chariot_migrate.services.kit.breaker import CircuitOpenError
from chariot_migrate.services.kit.graph.peers import PeerUnavailable
from chariot_migrate.services.kit.grpc_client import GrpcPeer
from chariot_migrate.services.kit.grpc_codegen import stubs

pb, pb_grpc = stubs("asset_discovery")


class GrpcAssetSource:
    def __init__(self, peer: GrpcPeer) -> None:
        self.peer = peer
        self.stub = pb_grpc.AssetDiscoveryServiceStub(peer.channel)

    @classmethod
    def connect(cls, address: str, token: Callable[[], str] | None, deadline_s: float) -> GrpcAssetSource:
        return cls(GrpcPeer(address, peer="asset-discovery", token=token, deadline_s=deadline_s))

    def _graph(self, username: str, **query: Any) -> Any:
        try:
            return self.peer.call(self.stub.GetAssetRelationships, pb.AssetQuery(**query), username)
        except CircuitOpenError:
            raise PeerUnavailable("circuit open") from None
        except grpc.RpcError as e:
            raise PeerUnavailable(f"gRPC {e.code().name if hasattr(e, 'code') else 'error'}") from None

    def get(self, username: str, key: str) -> dict[str, Any] | None:
        nodes = self._graph(username, key=key).nodes
        return next((json.loads(n.entity) for n in nodes if n.key == key), None)

    def list(self, username: str, kind: str) -> list[dict[str, Any]]:
        return [json.loads(n.entity) for n in self._graph(username, prefix=f"#{kind}#").nodes]

    def close(self) -> None:
        self.peer.close()
