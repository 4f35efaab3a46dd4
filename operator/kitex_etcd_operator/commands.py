"""Day-2 commands: ``resolve``, ``diff``, ``purge`` and ``status``.

Each reads the same state the operator reads and prints it for a person;
only ``purge`` writes, and only what this cluster id provably owns.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .connections import EtcdAccessError, EtcdConnections
from .desired import Defaults, DesiredState, EtcdAccess
from .etcd.client import EtcdClient
from .etcd.errors import EtcdError
from .kube import parse_kitexservice
from .kube.errors import SpecError
from .model import DEFAULT_OWNER_PREFIX, service_range
from .options import default_etcd, etcd_options
from .plan import Binding, Observed, make_plan
from .policy import PolicySet, decide_owner
from .registry import BindingRegistry
from .resolve import NoInstance, go_resolve
from .settings import Settings

if TYPE_CHECKING:
    from .kubeapi import KubeApi

T = TypeVar("T")


def _run(coro: Callable[[], Awaitable[T]]) -> T:
    from .kubeapi import NoKubeConfig

    try:
        return asyncio.run(coro())  # type: ignore[arg-type]
    except (EtcdError, NoKubeConfig) as exc:
        raise click.ClickException(str(exc)) from None


def _settings(kw: dict[str, Any]) -> Settings:
    return Settings(etcd=default_etcd(kw), prefix=kw["prefix"],
                    cluster_id=kw.get("cluster_id", "default"),
                    owner_prefix=kw.get("owner_prefix", DEFAULT_OWNER_PREFIX))


@click.command()
@click.argument("service")
@etcd_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def resolve(service: str, as_json: bool, **kw: Any) -> None:
    """Print SERVICE's instances exactly as a Kitex client's etcd resolver sees them."""
    settings = _settings(kw)

    async def read_range() -> None:
        connections = EtcdConnections(settings, None)
        client = EtcdClient(await connections.resolve(EtcdAccess()))
        try:
            kvs, _ = await client.get_prefix(service_range(settings.prefix, service))
        finally:
            await client.close()
        try:
            result = go_resolve(service, [(kv.key, kv.value, kv.lease) for kv in kvs])
        except NoInstance as exc:
            raise click.ClickException(f"{exc} (a Kitex client keeps its last good list)"
                                       ) from None
        if as_json:
            click.echo(json.dumps([{"network": e.instance.network, "address": e.instance.address,
                                    "weight": e.instance.weight, "tags": e.instance.tag_map(),
                                    "key": e.key, "lease": f"{e.lease:x}"}
                                   for e in result.entries], indent=2))
        else:
            click.echo(f"{'ADDRESS':<28} {'NETWORK':<8} {'WEIGHT':>6}  {'LEASE':<17} TAGS")
            for e in result.entries:
                i = e.instance
                click.echo(f"{i.address:<28} {i.network:<8} {i.weight:>6}  {e.lease:<17x} "
                           f"{json.dumps(i.tag_map()) if i.tags else '-'}")
        for key, why in result.skipped:
            click.echo(f"skipped {key}: {why}", err=True)

    _run(read_range)


def _ownership_options(fn: Any) -> Any:
    fn = click.option("--cluster-id", envvar="KITEX_ETCD_CLUSTER_ID", default="default",
                      show_default=True)(fn)
    return click.option("--owner-prefix", envvar="KITEX_ETCD_OWNER_PREFIX",
                        default=DEFAULT_OWNER_PREFIX, show_default=True)(fn)


@click.command()
@etcd_options
@_ownership_options
@click.option("--kubeconfig", envvar="KUBECONFIG", metavar="PATH",
              help="The kubeconfig (or set KUBECONFIG); in a pod, its ServiceAccount.")
@click.option("--namespace", "namespaces", multiple=True)
def diff(kubeconfig: str | None, namespaces: tuple[str, ...], **kw: Any) -> None:
    """Show, per service, what the operator would put and delete now. Writes nothing."""
    from .kubeapi import KubeApi  # at run time: --help must stay cheap

    settings = _settings(kw)

    async def compare() -> int:
        kube = await KubeApi.open(kubeconfig)
        state = DesiredState(Defaults(settings.prefix, settings.lease_ttl, settings.retry,
                                      settings.etcd.endpoints))
        await _load_tenancy(kube, state)
        for body in await kube.list_kitexservices(namespaces):
            meta = body["metadata"]
            key = (meta["namespace"], meta["name"])
            try:
                state.upsert_spec(key, parse_kitexservice(body),
                                  (body.get("spec") or {}).get("selector") or {},
                                  str(meta.get("creationTimestamp") or ""))
            except SpecError as err:
                click.echo(f"KitexService {key[0]}/{key[1]}: {err}", err=True)
            if key in state.spec_errors:
                click.echo(f"KitexService {key[0]}/{key[1]}: {state.spec_errors[key]}", err=True)
        for view in await kube.list_pods(namespaces):
            state.upsert_pod(view)
        connections = EtcdConnections(settings, kube, registries=lambda: state.registries)
        changes = 0
        try:
            for binding in sorted(state.bindings()):
                config = state.config_for(binding, None)
                if config is None:
                    continue
                try:
                    registry = await connections.get(config.access)
                except EtcdAccessError as err:
                    click.echo(f"{binding}: {err}", err=True)
                    continue
                # What the operator would write: the owner's instances only.
                owner = decide_owner(state.claims(binding), registry.recorded_owner(binding))
                values = state.values(binding, state.namespaces_of(binding, owner))
                changes += await _print_diff(registry, binding, values)
        finally:
            await connections.close()
            await kube.close()
        return changes

    changes = _run(compare)
    click.echo(f"{changes} change(s) pending")


async def _load_tenancy(kube: KubeApi, state: DesiredState) -> None:
    """The admin's policies and registries and the namespaces' labels, as the operator reads
    them; a kind whose CRD is not installed counts as none."""
    from .kube.tenancy import parse_policy, parse_registry
    from .kubeapi import POLICY_PLURAL, REGISTRY_PLURAL, CrdMissing

    async def objects(plural: str) -> list[dict[str, Any]]:
        try:
            return await kube.list_cluster_objects(plural)
        except CrdMissing:
            return []

    rules, registries, invalid = [], {}, False
    for body in await objects(POLICY_PLURAL):
        try:
            rules.append(parse_policy(body))
        except SpecError as err:
            invalid = True
            click.echo(f"KitexRegistrationPolicy {body['metadata']['name']}: {err}", err=True)
    for body in await objects(REGISTRY_PLURAL):
        try:
            registry = parse_registry(body)
            registries[registry.name] = registry
        except SpecError as err:
            click.echo(f"KitexEtcdRegistry {body['metadata']['name']}: {err}", err=True)
    state.set_tenancy(PolicySet(rules, enforcing=bool(rules) or invalid), registries)
    state.set_namespaces({ns["metadata"]["name"]: ns["metadata"].get("labels") or {}
                          for ns in await kube.list_namespaces()})


async def _print_diff(registry: BindingRegistry, binding: Binding,
                      desired: dict[str, bytes]) -> int:
    observed: dict[str, Observed] = await registry.observe(binding)
    ours = registry.owned_leases(binding)
    lease = next((o.lease for o in observed.values() if o.lease in ours), 0)
    plan = make_plan(desired, observed, lease=lease, owned_leases=ours)
    click.echo(f"{binding} (target {binding.etcd}): {len(desired)} desired, "
               f"{len(observed)} in etcd, {plan.unchanged} unchanged")
    for put in plan.puts:
        click.echo(f"  + {put.key} {put.value.decode()}")
    for delete in plan.deletes:
        click.echo(f"  - {delete.key}")
    for key in plan.conflicts:
        click.echo(f"  ! {key} is held by another writer")
    return len(plan.ops)


@click.command()
@etcd_options
@_ownership_options
@click.option("--yes", is_flag=True, help="Do it; without, only say what would go.")
def purge(yes: bool, **kw: Any) -> None:
    """Remove every entry this cluster id owns in the default etcd (for uninstall)."""
    settings = _settings(kw)

    async def revoke_all() -> None:
        connections = EtcdConnections(settings, None)
        registry = await connections.get(EtcdAccess())
        try:
            records = sorted(registry.records.values(), key=lambda r: (r.prefix, r.service))
            click.echo(f"{len(records)} lease(s) owned by cluster id {settings.cluster_id!r}")
            for done, record in enumerate(records, 1):
                binding = Binding(EtcdAccess().id, record.prefix, record.service)
                keys = [k for k, o in (await registry.observe(binding)).items()
                        if o.lease == record.lease]
                verb = "revoking" if yes else "would revoke"
                click.echo(f"[{done}/{len(records)}] {verb} lease {record.lease:x}: "
                           f"{record.prefix}/{record.service}, {len(keys)} entr(y/ies)")
                if yes:
                    await registry.remove(binding)
        finally:
            await connections.close()
        if not yes:
            click.echo("nothing removed: add --yes to purge")

    _run(revoke_all)


@click.command()
@click.option("--kubeconfig", envvar="KUBECONFIG", metavar="PATH",
              help="The kubeconfig (or set KUBECONFIG); in a pod, its ServiceAccount.")
@click.option("--namespace", "namespaces", multiple=True)
def status(kubeconfig: str | None, namespaces: tuple[str, ...]) -> None:
    """The KitexServices with their conditions and counts, as a table."""
    from .kubeapi import KubeApi

    async def list_services() -> list[dict[str, Any]]:
        kube = await KubeApi.open(kubeconfig)
        try:
            return await kube.list_kitexservices(namespaces)
        finally:
            await kube.close()

    items = _run(list_services)
    rows = [("NAMESPACE", "NAME", "SERVICE", "READY", "CONDITIONS", "LAST ERROR")]
    for body in sorted(items, key=lambda b: (b["metadata"]["namespace"], b["metadata"]["name"])):
        st = body.get("status") or {}
        conds = ",".join(f"{c['type']}={c['status']}" for c in st.get("conditions") or [])
        rows.append((body["metadata"]["namespace"], body["metadata"]["name"],
                     str(st.get("serviceName", "")), str(st.get("readyInstances", 0)),
                     conds or "-", (st.get("lastError") or "-")[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not items:
        sys.stderr.write("no KitexService found\n")
