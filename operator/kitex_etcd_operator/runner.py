"""``kitex-etcd-operator run``: settings from flags and environment, then kopf.

Every flag has an environment variable, so the Deployment can be configured
either way; the lease TTL also honours registry-etcd's own
``KITEX_ETCD_REGISTRY_LEASE_TTL``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import click

from . import metrics, supervisor
from .durations import OBSERVE_DELAY, RETRY_DELAY
from .kube.checks import MAX_LEASE_TTL, MIN_LEASE_TTL
from .leader import ElectionConfig, LeaderElector, LostLeadership
from .logs import setup_logging
from .model import DEFAULT_LEASE_TTL, DEFAULT_OWNER_PREFIX, validate_prefix
from .options import Duration, default_etcd, etcd_options
from .plan import Policy
from .retry import RetryConfig
from .settings import Settings
from .startup import freeze_heap, import_kopf, pause_collector

if TYPE_CHECKING:
    from .kubeapi import KubeApi

log = logging.getLogger(__name__)
TAKEOVER_MARGIN = 10.0  # seconds a new leader may need for its first sync
STOP_GRACE = 10.0  # seconds the controller gets to stop writing on SIGTERM
# kopf starts once the first sync is done, or after this many seconds: KitexService
# and policy changes made during a long initial sync are not held back longer.
KOPF_START_WAIT = 2.0
FREEZE_WAIT = 30.0  # seconds for the first writes before the heap is frozen anyway
KOPF_SIGNAL_TURNS = 5  # loop turns kopf takes to install its signal handlers (it takes 2)


@click.command()
@etcd_options
@click.option("--kubeconfig", envvar="KUBECONFIG", metavar="PATH",
              help="Outside a cluster: the kubeconfig (or set KUBECONFIG). In a pod: the "
              "ServiceAccount's token.")
@click.option("--lease-ttl", envvar="KITEX_ETCD_REGISTRY_LEASE_TTL",
              type=click.IntRange(MIN_LEASE_TTL, MAX_LEASE_TTL),
              default=DEFAULT_LEASE_TTL, show_default=True, help="Default lease TTL (seconds).")
@click.option("--max-attempt-times", envvar="KITEX_ETCD_MAX_ATTEMPT_TIMES",
              type=click.IntRange(0), default=5, show_default=True,
              help="Default retry.maxAttemptTimes: failures before Degraded (0: unlimited).")
@click.option("--observe-delay", envvar="KITEX_ETCD_OBSERVE_DELAY",
              type=Duration(OBSERVE_DELAY),
              default="30s", show_default=True, help="Default retry.observeDelay.")
@click.option("--retry-delay", envvar="KITEX_ETCD_RETRY_DELAY", type=Duration(RETRY_DELAY),
              default="10s", show_default=True, help="Default retry.retryDelay.")
@click.option("--cluster-id", envvar="KITEX_ETCD_CLUSTER_ID", default="default",
              show_default=True, help="Owner id: operators of different clusters sharing an "
              "etcd must use different ids.")
@click.option("--owner-prefix", envvar="KITEX_ETCD_OWNER_PREFIX", default=DEFAULT_OWNER_PREFIX,
              show_default=True, help="Where ownership records live in etcd.")
@click.option("--namespace", "namespaces", envvar="KITEX_ETCD_NAMESPACES", multiple=True,
              help="Watch only these namespaces (repeat); default: cluster-wide.")
@click.option("--policy", envvar="KITEX_ETCD_POLICY", default="sync", show_default=True,
              type=click.Choice([p.value for p in Policy]))
@click.option("--dry-run", envvar="KITEX_ETCD_DRY_RUN", is_flag=True,
              help="Log the plan, write nothing to etcd.")
@click.option("--max-deletes", envvar="KITEX_ETCD_MAX_DELETES", type=click.IntRange(1),
              help="Cap on deletions per service and cycle.")
@click.option("--resync-period", envvar="KITEX_ETCD_RESYNC_PERIOD", type=Duration(),
              default="5m", show_default=True,
              help="How often pods are relisted, a safety net for a missed deletion; at "
              "100,000 pods a list is ~210 MB from the API server: 30m on a busy one.")
@click.option("--gc-patience", envvar="KITEX_ETCD_GC_PATIENCE", type=Duration((0.0, 60.0)),
              default="500ms", show_default=True,
              help="How long a due garbage collection may wait for a moment when no change "
              "is on its way to etcd (0: collect when the interpreter would, whatever is "
              "in flight).")
@click.option("--metrics-max-services", envvar="KITEX_ETCD_METRICS_MAX_SERVICES",
              type=click.IntRange(1), default=metrics.MAX_SERVICES, show_default=True,
              help="Services with series of their own in per-service metrics; the rest "
              "are summed under prefix/service \"_other\".")
@click.option("--health-port", envvar="KITEX_ETCD_HEALTH_PORT", type=int, default=8080,
              show_default=True, help="Port of /healthz, /readyz and /metrics.")
@click.option("--leader-elect/--no-leader-elect", envvar="KITEX_ETCD_LEADER_ELECT",
              default=False, show_default=True,
              help="Elect one writer among replicas through a coordination Lease.")
@click.option("--leader-election-namespace", envvar="POD_NAMESPACE", default="default",
              show_default=True)
@click.option("--leader-election-id", envvar="POD_NAME", default=None,
              help="This replica's identity (default: host name and pid).")
@click.option("--operator-namespace", envvar=["KITEX_ETCD_OPERATOR_NAMESPACE", "POD_NAMESPACE"],
              default="kitex-etcd-operator", show_default=True,
              help="The operator's own namespace: KitexEtcdRegistry Secrets are read there.")
@click.option("--allow-custom-endpoints/--no-allow-custom-endpoints",
              envvar="KITEX_ETCD_ALLOW_CUSTOM_ENDPOINTS", default=False, show_default=True,
              help="Single-team default only (no KitexRegistrationPolicy exists): let "
              "KitexServices name etcd endpoints of their own.")
@click.option("--service-source/--no-service-source", envvar="KITEX_ETCD_SERVICE_SOURCE",
              default=True, show_default=True,
              help="Watch Services and EndpointSlices: register Services of namespaces "
              "labelled kitex.cloudwego.io/auto-register=enabled, annotated Services and "
              "KitexServices with spec.serviceRef.")
@click.option("--claim-grace", envvar="KITEX_ETCD_CLAIM_GRACE", type=Duration(), default="5m",
              show_default=True, help="How long a service name stays with its owner after "
              "the owner's last pod or KitexService is gone.")
@click.option("--log-format", envvar="KITEX_ETCD_LOG_FORMAT", default="text",
              type=click.Choice(["text", "json"]), show_default=True)
@click.option("--log-level", envvar="KITEX_ETCD_LOG_LEVEL", default="info",
              type=click.Choice(["debug", "info", "warning", "error"]), show_default=True)
def run(**kw: Any) -> None:
    """Run the operator: watch pods and KitexServices, keep etcd in line."""
    setup_logging(kw["log_format"], kw["log_level"])
    metrics.set_max_services(kw["metrics_max_services"])
    try:
        prefix = validate_prefix(kw["prefix"], field="--prefix")
        retry = RetryConfig(kw["max_attempt_times"], kw["observe_delay"], kw["retry_delay"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    settings = Settings(
        etcd=default_etcd(kw), prefix=prefix, lease_ttl=kw["lease_ttl"], retry=retry,
        cluster_id=kw["cluster_id"], owner_prefix=kw["owner_prefix"],
        namespaces=tuple(ns for item in kw["namespaces"] for ns in item.split(",") if ns),
        policy=Policy(kw["policy"]), dry_run=kw["dry_run"], max_deletes=kw["max_deletes"],
        resync_period=kw["resync_period"], gc_patience=kw["gc_patience"],
        health_port=kw["health_port"],
        operator_namespace=kw["operator_namespace"],
        allow_custom_endpoints=kw["allow_custom_endpoints"], claim_grace=kw["claim_grace"],
        service_source=kw["service_source"])
    election = None
    if kw["leader_elect"]:
        identity = kw["leader_election_id"] or f"{socket.gethostname()}-{os.getpid()}"
        election = ElectionConfig(namespace=kw["leader_election_namespace"], identity=identity)
        check_takeover_fits(election, settings.lease_ttl)
    from .kubeapi import NoKubeConfig

    try:
        asyncio.run(operate(settings, election, kw["kubeconfig"]))
    except NoKubeConfig as exc:
        raise click.ClickException(str(exc)) from None
    except LostLeadership as exc:
        # A bug while leading steps down too (leader.py): its traceback must be seen.
        log.error("Stepping down: %s", exc, exc_info=exc.__cause__)
        sys.exit(1)


def check_takeover_fits(election: ElectionConfig, lease_ttl: int) -> None:
    """Refuse a lease TTL that a leader crash could outlast.

    After a crash nobody keeps the etcd leases alive until the standby leads:
    up to ``lease_duration + retry_period`` plus its first sync. With a TTL
    shorter than that (and a margin for the sync) every entry would expire
    in a takeover, so it is a configuration error, not a warning.
    """
    takeover = election.lease_duration + election.retry_period + TAKEOVER_MARGIN
    if lease_ttl < takeover:
        raise click.UsageError(
            f"--lease-ttl {lease_ttl}s is shorter than a leader takeover after a crash "
            f"(up to {takeover:g}s: leader lease {election.lease_duration:g}s + retry "
            f"{election.retry_period:g}s + {TAKEOVER_MARGIN:g}s for the first sync): "
            f"entries would expire; raise --lease-ttl or run without --leader-elect")


class Shutdown:
    """SIGTERM and SIGINT, handled by the operator rather than by kopf.

    A stop must go in order: stop writing, then release the leader Lease, then
    let kopf go. kopf's own handler stops kopf first, and a stop that arrives
    while kopf is still starting can hang in its API retries; so the
    operator takes the signals back once kopf has installed its handlers. A
    second signal exits at once.
    """

    def __init__(self) -> None:
        self.requested = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signalled, sig)

    def _signalled(self, sig: signal.Signals) -> None:
        if self.requested.is_set():
            log.warning("%s again: exiting now", sig.name)
            os._exit(1)
        log.info("%s received: stopping", sig.name)
        self.requested.set()


async def _within(awaitable: Awaitable[object], seconds: float, what: str) -> None:
    """One step of the shutdown, bounded: a stuck step must not keep the pod alive."""
    try:
        await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        log.warning("Shutdown: %s took longer than %gs; going on", what, seconds)
    except Exception as exc:
        log.warning("Shutdown: %s failed: %s", what, exc)


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def operate(settings: Settings, election: ElectionConfig | None = None,
                  kubeconfig: str | None = None) -> None:
    """Watch from the start (a standby stays warm), write only once leading."""
    pause_collector(asyncio.get_running_loop())
    from .kubeapi import KubeApi

    run = OperatorRun(settings, election, await KubeApi.open(kubeconfig))
    await run.start()
    try:
        await run.until_stopped()
    finally:
        await run.stop()


class OperatorRun:
    """One run of the operator: what starts, in which order, and how it stops.

    kopf watches the KitexServices and the tenancy objects, the controller
    watches pods and writes once this replica leads, the elector decides
    that, and the probes report on all three. The run ends on a signal, when
    kopf stops, or when leadership is lost (the process then exits, and the
    Deployment starts it again as a standby).
    """

    def __init__(self, settings: Settings, election: ElectionConfig | None,
                 kube: KubeApi) -> None:
        from .controller import Controller

        self.settings = settings
        self.shutdown = Shutdown()
        self.kube = kube
        self.controller = Controller(settings, self.kube)
        self.election = election
        self.elector = LeaderElector(self.kube, election) if election else None
        self.kopf_stop = asyncio.Event()
        self._background: list[asyncio.Task[Any]] = []  # cancelled first at the stop

    def ready(self) -> bool:
        """``/readyz``. A warm standby is ready: were it not, a rolling update
        (maxUnavailable 0) would wait forever for a new replica that cannot lead
        while the old one does."""
        if self.elector is not None and not self.elector.leading.is_set():
            return self.controller.warm
        return self.controller.ready

    async def start(self) -> None:
        from . import probes

        settings = self.settings
        self.shutdown.install()
        self.probes = await probes.serve(settings.health_host, settings.health_port,
                                         ready=self.ready,
                                         alive=lambda: supervisor.default().healthy)
        log.info("Operator starting: cluster id %s, %s, policy %s%s", settings.cluster_id,
                 "namespaces " + ",".join(settings.namespaces) if settings.namespaces
                 else "cluster-wide", settings.policy.value,
                 ", dry run" if settings.dry_run else "")
        self.controller.watch_pods()
        self.kopf_task = asyncio.create_task(self._run_kopf(), name="kopf")
        self.elector_task = None
        if self.elector is not None and self.election is not None:
            self.elector_task = supervisor.spawn("leader-election", self.election.identity,
                                                 self.elector.run, fatal=(LostLeadership,))
        self.stop_task = asyncio.create_task(self.shutdown.requested.wait(), name="stop")
        metrics.measure_collections()
        self._background = [supervisor.spawn("startup", "lead", self._lead),
                            supervisor.spawn("metrics", "event loop lag",
                                             metrics.measure_loop_lag),
                            self.stop_task]

    async def _run_kopf(self) -> None:
        """kopf, once the first sync is done (or ``KOPF_START_WAIT`` has passed).

        The controller lists KitexServices and the tenancy objects itself
        before its first sync, so kopf's watches only carry later changes,
        and kopf's own initial listing hands over every object again: nothing
        is missed by starting it late. Started at once, its import, API
        discovery and four initial lists shared the one event loop with the
        first sync, a good part of the start-up to /readyz.
        """
        await self._until_ready(KOPF_START_WAIT)
        if self.kopf_stop.is_set():
            return
        import_kopf()
        import kopf

        from .handlers import make_registry

        settings = self.settings
        kopf_run = asyncio.create_task(kopf.operator(
            registry=make_registry(self.controller, on_startup=self.shutdown.install),
            standalone=True, clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces), stop_flag=self.kopf_stop),
            name="kopf-operator")
        # kopf puts its own SIGTERM handler in within its first turns of the loop, and
        # its startup handler gives the signals back only after its login: a stop in
        # between would stop kopf first. Ours go back at once (and again at startup).
        for _ in range(KOPF_SIGNAL_TURNS):
            await asyncio.sleep(0)
        self.shutdown.install()
        await kopf_run  # cancelling this task cancels kopf's with it

    async def _lead(self) -> None:
        if self.elector is not None:
            await self.elector.leading.wait()
        metrics.leader.set(1)
        await self.controller.start()
        freeze_heap()  # the lists' state: every pod's view and desired entry
        # Then what every service's first sync keeps of etcd (a record a key, each
        # worker's state). Frozen only with the lists' state, before those syncs, it
        # went through the young generations right after the start (at 100,000 pods,
        # a collection of 100 ms on the way) to stay in the old one, walked by each of
        # its collections. Frozen only after them, the collector would have been off
        # during the writes, and their garbage in memory.
        await self._until_ready(FREEZE_WAIT)
        freeze_heap()
        self.controller.collector.start()

    async def _until_ready(self, seconds: float) -> None:
        """Until every service's first sync was tried (``/readyz``), a stop, or
        ``seconds``. Readiness is computed over every worker, no one event says it:
        polled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.ready() and not self.kopf_stop.is_set() \
                and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def until_stopped(self) -> None:
        """Until a signal, kopf's end or the elector's; their errors are raised here."""
        watched = {self.kopf_task, self.stop_task}
        if self.elector_task is not None:
            watched.add(self.elector_task)
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = None if task is self.stop_task else task.exception()
            if error is not None:
                raise error
        if self.kopf_task in done:
            log.error("kopf stopped on its own; stopping")

    async def stop(self) -> None:
        """Stop writing first, then hand the Lease over, then let kopf go."""
        await _cancel(*self._background)
        await _within(self.controller.stop(), STOP_GRACE, "stopping the controller")
        if self.elector_task is not None and self.elector is not None:
            await _cancel(self.elector_task)
            await _within(self.elector.release(), 5, "releasing the leader Lease")
        self.kopf_stop.set()
        await _within(asyncio.wait({self.kopf_task}), 2, "stopping kopf")
        await _cancel(self.kopf_task)
        await self.probes.cleanup()
        await self.kube.close()
