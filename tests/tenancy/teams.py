"""team-a (the victim) and team-b (the attacker): what the attack tests share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.etcd_probe import KV, EtcdProbe, WatchRecorder
from tests.support.helpers import wait_for
from tests.support.kube_objects import PREFIX

GROUP, VERSION = "kitex.cloudwego.io", "v1alpha1"


@dataclass
class Teams:
    """team-a (the victim) and team-b (the attacker), with what team-a registered."""

    a: str
    b: str
    service: str
    core: Any
    custom: Any
    probe: EtcdProbe
    operator: Any = None
    before: dict[str, KV] = field(default_factory=dict)
    watch: WatchRecorder | None = None

    @property
    def range(self) -> str:
        return f"{PREFIX}/{self.service}/"

    def events(self, namespace: str, reason: str, name: str | None = None) -> list[Any]:
        items = self.core.list_namespaced_event(namespace).items
        return [e for e in items if e.reason == reason
                and (name is None or e.involved_object.name == name)]

    def wait_event(self, namespace: str, reason: str, name: str | None = None,
                   timeout: float = 60) -> Any:
        return wait_for(lambda: self.events(namespace, reason, name), timeout=timeout,
                        what=f"a {reason} Event in {namespace}")[0]

    def kitexservice(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "kitexservices", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "KitexService",
            "metadata": {"name": name}, "spec": spec})

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace,
                                                       "kitexservices", name)
        return dict(obj.get("status") or {})

    def condition(self, namespace: str, name: str, kind: str) -> dict[str, Any]:
        for cond in self.status(namespace, name).get("conditions") or []:
            if cond["type"] == kind:
                return dict(cond)
        return {}

    def settle(self) -> None:
        """Take the victim's picture and start watching its range."""
        self.before = self.probe.get_prefix(self.range)
        assert len(self.before) == 3
        self.watch = self.probe.watch(self.range)

    def stop_watching(self) -> None:
        """For tests that change team-a's service on purpose after the attack."""
        if self.watch is not None:
            self.watch.stop()

    def assert_untouched(self) -> None:
        """Byte-identical keys, same leases, and not one etcd event on the range."""
        assert self.watch is not None
        after = self.probe.get_prefix(self.range)
        assert {k: (v.value, v.lease) for k, v in after.items()} == \
            {k: (v.value, v.lease) for k, v in self.before.items()}
        assert self.watch.snapshot() == [], self.watch.snapshot()
