"""The Services and EndpointSlices held in memory, indexed the ways the state asks.

A slice names its Service by label and may arrive before or after it, or
change hands; the index keeps both sides so that a Service event finds its
slices and a slice event its Service in O(1), whatever the cluster's size.
"""

from __future__ import annotations

from collections import defaultdict

from .services import ServiceView, SliceView

ServiceKey = tuple[str, str]  # (namespace, name) of a Service


class ServiceIndex:
    """Services by (namespace, name), slices by uid, and which slices serve which Service."""

    def __init__(self) -> None:
        self.services: dict[ServiceKey, ServiceView] = {}
        self.slices: dict[str, SliceView] = {}
        self._by_service: dict[ServiceKey, set[str]] = defaultdict(set)
        self._by_namespace: dict[str, set[str]] = defaultdict(set)
        self.endpoints = 0  # endpoints held, over every slice (a gauge and the benchmark)

    def put_service(self, view: ServiceView) -> None:
        self.services[view.key] = view
        self._by_namespace[view.namespace].add(view.name)

    def drop_service(self, key: ServiceKey) -> ServiceView | None:
        self._by_namespace[key[0]].discard(key[1])
        if not self._by_namespace[key[0]]:
            del self._by_namespace[key[0]]
        return self.services.pop(key, None)

    def put_slice(self, view: SliceView) -> None:
        self.drop_slice(view.uid)
        self.slices[view.uid] = view
        self._by_service[view.service_key].add(view.uid)
        self.endpoints += len(view.endpoints)

    def drop_slice(self, uid: str) -> SliceView | None:
        old = self.slices.pop(uid, None)
        if old is not None:
            uids = self._by_service[old.service_key]
            uids.discard(uid)
            if not uids:
                del self._by_service[old.service_key]
            self.endpoints -= len(old.endpoints)
        return old

    def slices_of(self, key: ServiceKey) -> list[str]:
        return sorted(self._by_service.get(key, ()))

    def in_namespace(self, namespace: str) -> list[ServiceKey]:
        return [(namespace, name) for name in sorted(self._by_namespace.get(namespace, ()))]

    def namespaces(self) -> set[str]:
        return set(self._by_namespace)

    def uid_of(self, uid: str) -> ServiceKey | None:
        """The key of the Service with this uid (a complete list lacks it: deleted unseen)."""
        return next((key for key, view in self.services.items() if view.uid == uid), None)
