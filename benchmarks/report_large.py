"""The ``make bench-large`` section of docs/benchmarks.md, from benchmarks-large.json.

Its own file of figures, so that ``make bench`` (which writes the rest of the
page from benchmarks.json) keeps it, and the other way round. The verdicts on
issue 18's targets and the extrapolation to 500,000 pods are computed from
the figures, never written by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SYNC_TARGET_S = 20.0
LIMIT_RATIO = 1.5
RSS_TARGET_MIB = 300.0
SLOPE_TARGET_KIB = 1.5
OWN_P99_TARGET_MS = 20.0
READY_TARGET_S = 1.0
BASELINE_TARGET_MIB = 90.0
FLEET = 500_000
LARGE_REDUCED = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-large-reduced.json"


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _seconds(value: float | None) -> str:
    """A duration, or "-" where the run did not record it (NaN in older files)."""
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _sizes(large: dict[str, Any]) -> list[str]:
    lines = ["| pods (ready) | instance keys | pods created in (s) | all ready after (s) "
             "| Go list, best of 3 (s) | operator: start to all keys (s) | ratio "
             "| /readyz (s) | operator CPU (s) | peak RSS (MiB) | etcd requests |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, r in sorted(large["sizes"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {int(n):,} | {r['keys']:,} | {r['create_s']:.0f} | {r['ready_s']:.0f} | "
            f"{r['go_list_s']:.2f} | {r['seconds']:.1f} | {r['seconds'] / r['go_list_s']:.1f}x "
            f"| {_seconds(r.get('readyz_s'))} | {r['cpu_s']:.1f} | {r['peak_rss_mib']:.0f} | "
            f"{r['etcd_requests']:,.0f} |")
    return lines


def _churn(large: dict[str, Any], top: int) -> list[str]:
    lines = ["| target rate/s | achieved/s | events | end to end p50 / p99 ms "
             "| API round trip p50 / p99 ms | operator's share p50 / p99 ms "
             "| operator CPU (% of a core) | operator CPU s per 1,000 events |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for rate, r in sorted(large["churn"].items(), key=lambda kv: int(kv[0])):
        cpu = large["cpu"][rate]["operator"]
        lines.append(
            f"| {rate} | {r['achieved_rate']:.0f} | {r['events']:.0f} | {r['p50_ms']:.0f} / "
            f"{r['p99_ms']:.0f} | {r['api_p50_ms']:.0f} / {r['api_p99_ms']:.0f} | "
            f"<= {r['own_p50_ms']:.0f} / <= {r['own_p99_ms']:.0f} | {cpu:.0f} | "
            f"{cpu / 100 / r['achieved_rate'] * 1000:.2f} |")
    return [f"Churn with {top:,} pods held (1,000 services): readiness flips (9 in 10) and "
            "deletions (1 in 10) of pods of every service, from `kitex-churn`; same "
            "measures as the churn section below. The operator's share now has buckets of "
            "1 to 2 ms up to 20 ms.", "", *lines]


def _leases(large: dict[str, Any]) -> list[str]:
    lines = ["| scenario | writer p50 ms | p99 ms | max ms | puts |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in large["leases"].items():
        lines.append(f"| {name} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} "
                     f"| {r['puts']:.0f} |")
    return lines


def _lease_verdict(large: dict[str, Any]) -> list[str]:
    """Whether one big lease hurts, and whether capping the keys per lease helps."""
    runs = large["leases"]
    base = runs.get("baseline (no lease event)")
    one = [v for k, v in runs.items() if "1 lease(s)" in k]
    capped = [v for k, v in runs.items() if "10 lease(s)" in k]
    if base is None or not one or not capped:
        return []
    worst_one = max(v["max_ms"] for v in one)
    worst_capped = max(v["max_ms"] for v in capped)
    p99 = max(v["p99_ms"] for v in one)
    return [f"One lease of 10,000 keys stalls a concurrent writer once, for at most "
            f"{worst_one:.0f} ms, and leaves its p99 at {p99:.1f} ms (baseline "
            f"{base['p99_ms']:.1f} ms); split over leases of 1,000 the worst stall is "
            f"{worst_capped:.0f} ms, no better, since the ten revocations come together; a "
            "put onto a lease holding 10,000 keys costs what one onto an empty lease does. "
            "So the keys per lease are not capped: one lease per service stays, and with it "
            "one ownership record per lease."]


def _slope(large: dict[str, Any]) -> tuple[int, int, float]:
    """(from, to, KiB per pod) of the peak RSS between the two largest sizes."""
    sizes = sorted(int(n) for n in large["sizes"])
    lo, hi = sizes[-2], sizes[-1]
    rss = {n: large["sizes"][str(n)]["peak_rss_mib"] for n in (lo, hi)}
    return lo, hi, (rss[hi] - rss[lo]) * 1024 / max(hi - lo, 1)


def _targets(large: dict[str, Any]) -> list[str]:
    lo, top, slope = _slope(large)
    r = large["sizes"][str(top)]
    ratio = r["seconds"] / r["go_list_s"]
    lines = ["| target (issue 18) | result | verdict |", "| --- | --- | --- |",
             f"| {top:,} pods synced in < {SYNC_TARGET_S:.0f} s | {r['seconds']:.1f} s from "
             f"process start to all {r['keys']:,} keys | "
             f"{_verdict(r['seconds'] < SYNC_TARGET_S)} |",
             f"| within {LIMIT_RATIO}x of a Go client-go list of the same pods | Go "
             f"{r['go_list_s']:.2f} s, operator {r['seconds']:.1f} s: {ratio:.1f}x | "
             f"{_verdict(ratio <= LIMIT_RATIO)} |",
             f"| peak RSS < {RSS_TARGET_MIB:.0f} MiB at {top:,} pods | "
             f"{r['peak_rss_mib']:.0f} MiB | {_verdict(r['peak_rss_mib'] < RSS_TARGET_MIB)} |",
             f"| RSS slope < {SLOPE_TARGET_KIB} KiB per pod ({lo:,} to {top:,}) | "
             f"{slope:.2f} KiB | {_verdict(slope < SLOPE_TARGET_KIB)} |"]
    small = large["sizes"].get("100")
    if small is not None:
        lines += [f"| start-up: process start to /readyz with 100 pods < {READY_TARGET_S:.0f} s | "
                  f"{small['readyz_s']:.2f} s | {_verdict(small['readyz_s'] < READY_TARGET_S)} |",
                  f"| baseline: peak RSS at 100 pods < {BASELINE_TARGET_MIB:.0f} MiB | "
                  f"{small['peak_rss_mib']:.0f} MiB | "
                  f"{_verdict(small['peak_rss_mib'] < BASELINE_TARGET_MIB)} |"]
    if large["churn"]:
        rate, c = max(((int(k), v) for k, v in large["churn"].items()
                       if v["achieved_rate"] >= 0.95 * int(k) and not v["errors"]),
                      default=(0, None), key=lambda kv: kv[0])
        if c is not None:
            lines.append(f"| operator's share p99 < {OWN_P99_TARGET_MS:.0f} ms at the highest "
                         f"rate sustained | <= {c['own_p99_ms']:.0f} ms at {rate}/s "
                         f"({c['achieved_rate']:.0f}/s achieved) | "
                         f"{_verdict(c['own_p99_ms'] < OWN_P99_TARGET_MS)} |")
            cpu = large["cpu"][str(rate)]["operator"]
            lines.append(f"| CPU per 1,000 events (reported) | "
                         f"{cpu / 100 / c['achieved_rate'] * 1000:.2f} s at {rate}/s | - |")
    return lines


def _fleet(large: dict[str, Any]) -> list[str]:
    """What the figures imply for 500,000 pods, linearly from the two sizes."""
    lo, top, slope = _slope(large)
    a, b = large["sizes"][str(lo)], large["sizes"][str(top)]
    per_pod_sync = (b["seconds"] - a["seconds"]) / (top - lo)
    per_pod_go = (b["go_list_s"] - a["go_list_s"]) / (top - lo)
    sync = b["seconds"] + per_pod_sync * (FLEET - top)
    go = b["go_list_s"] + per_pod_go * (FLEET - top)
    rss = b["peak_rss_mib"] + slope * (FLEET - top) / 1024
    enough = (f"one leader meets the {SYNC_TARGET_S:.0f} s target at {top:,} pods here, so "
              "none of this is built" if b["seconds"] < SYNC_TARGET_S else
              f"one leader misses the {SYNC_TARGET_S:.0f} s target at {top:,} pods here, but "
              "most of its time is reading the pods, which sharding by service does not "
              "divide; none of this is built")
    return [
        f"Linear from the {lo:,} and {top:,}-pod runs: at {FLEET:,} pods one leader would "
        f"sync in about {sync:.0f} s (the Go list alone about {go:.0f} s) and peak near "
        f"{rss:.0f} MiB ({slope:.2f} KiB a pod). What limits one leader there, in order:",
        "",
        "1. **Reading the pods.** The initial list and every resync read all of them: the "
        "API server encodes ~3.5 KB of JSON per pod, and the operator decodes it on one "
        "core (the GIL). Past a few hundred thousand pods, the list alone takes longer than "
        "a lease TTL would tolerate on a restart, and a 410 Gone relist costs the same "
        "again. Protobuf lists (what the Go yardstick uses) would cut the API server's "
        "share; reading only the needed fields is done already.",
        "2. **Memory.** Every pod in scope is held as a `PodView` plus its desired entry; at "
        f"{slope:.2f} KiB a pod that is well within one process at {FLEET:,} pods, "
        "so memory is not what forces a split.",
        "3. **etcd writes** are not the limit: the registry etcd takes tens of thousands of "
        "keys a second in batches (see *The physical limit*), and churn is bounded by the "
        "API server long before (its CPU is the first to saturate in every churn run).",
        "4. **Churn CPU.** The operator's CPU per 1,000 events (table above) times the "
        "fleet's event rate gives its share of one core; one Python process uses one core.",
        "",
        f"**How the work would be split** if one leader were not enough ({enough}): "
        "shard by a stable hash of the *service* "
        "(the binding: `prefix/service` in one etcd), not of the namespace, since a service "
        "may span namespaces and its keys, lease and ownership records must have exactly "
        "one writer. N replicas each hold a `coordination.k8s.io` Lease per shard "
        "(`kitex-etcd-operator-shard-<i>`), acquired like today's leader Lease; a replica "
        "writes only bindings whose hash falls in the shards it holds. Each replica still "
        "watches every pod in scope (a label selector cannot express a hash), so reading "
        "does not shrink with N; what shrinks is the etcd writing, the keepalives and the "
        "per-service work. Ownership stays provable because records already carry the "
        "owner group and leases are per binding: a shard handing over is a leader change "
        "for those bindings only (the new holder adopts their leases from the records). "
        "Splitting the *reading* needs the pods partitioned by something the API server "
        "can filter on: namespaces (one watch per namespace set per replica), which is "
        "the fallback when single-namespace services dominate.",
    ]


def _misses(large: dict[str, Any]) -> list[str]:
    """Where the time and memory went, from the figures, for the targets missed."""
    top = max(int(n) for n in large["sizes"])
    r = large["sizes"][str(top)]
    client = next((step for step in large.get("imports", []) if "CoreV1Api" in step[0]), None)
    before = large["imports"][-2][2] if client and len(large["imports"]) > 1 else 0.0
    lines = [
        f"- **Sync at {top:,}.** The operator used {r['cpu_s']:.1f} s of CPU in its "
        f"{r['seconds']:.1f} s; the rest it waited on the API server, which had to encode "
        "every pod as JSON for it (the Go list asks for protobuf, cheaper to encode) on a "
        "machine whose two cores it shared with kwok, the other control-plane processes "
        "and other test runs. Reading pods as protobuf (a decoder of the few fields, as "
        "`podwire` does for JSON) is the next step toward the 1.5x; the writes (4 etcd "
        "requests a service) are not where the time goes.",
        f"- **Memory.** The Python heap holds ~1.65 KB a pod (views, desired entries, "
        f"keys); the peak adds the pages in flight and the allocator's slack, hence "
        f"{_slope(large)[2]:.2f} KiB a pod of RSS.",
        "- **The operator's share** has a floor: a binding waits `debounce` (20 ms) after "
        "the first change to gather a burst into one write, so its p50 is that wait and a "
        "p99 under 20 ms needs a shorter debounce (a behaviour change left to decide; "
        "more etcd writes under bursts).",
    ]
    if client is not None:
        lines.append(
            f"- **Start-up and baseline.** Of the process's {client[2]:.0f} MiB before the "
            f"first pod, building `kubernetes.client.CoreV1Api` takes {client[1]:.2f} s and "
            f"{client[2] - before:.0f} MiB (kubernetes 37 generates it with pydantic "
            "validators for every method). Reading pods, namespaces and Secrets through "
            "the client's REST layer (or aiohttp, with the credentials already passed to "
            "kopf) instead would take most of both off; done in the second round (below).")
    return lines


# Measured without a cluster on this machine (docs/benchmarks.md says how), before and after
# each change of the second round; the reduced run's figures come from its JSON.
SECOND_ROUND_BENCH = [
    ("process start to the operator's modules, kopf and the API client loaded "
     "(a quiet machine)", "1.36-1.53 s, 105.5 MiB", "0.55 s, 66.3 MiB"),
    ("Python heap per pod: view, desired entry, registry copy (`benchmarks.pod_memory`, "
     "10,000 pods)", "1,659 B", "1,241 B"),
    ("garbage collections while feeding 50,000 pods (time in them)", "1,504 (0.54 s)",
     "710 (0.25 s)"),
    ("CPU to decode and feed 20,000 pods (`benchmarks.pod_memory`, loaded machine, "
     "3 runs each)", "~1.2 s", "~0.9 s"),
    ("the whole controller, 20,000 pods over 1,000 services into a fresh etcd, stand-in "
     "API server: pods listed after / every service attempted after "
     "(`benchmarks.list_speed --sync`, loaded machine, 2 runs each; before is the "
     "round without its last change, a list telling the workers once)",
     "1.69-1.95 s / 3.1-3.9 s", "1.45-1.49 s / 3.1-3.2 s"),
    ("the same, peak RSS at 10,000 / 30,000 pods, and the slope between "
     "(before: the round without its last change, 64 syncs at most per etcd)",
     "117 / 156 MiB, 1.95 KiB a pod", "94 / 117 MiB, 1.18 KiB a pod"),
    ("a full garbage collection with 30,000 pods held (a stall of every event in flight)",
     "34 ms", "0 ms once frozen after the initial sync"),
]
SECOND_ROUND_CHANGES = [
    "- **The API client.** `kubeapi.py` calls the API server over aiohttp (already "
    "loaded for kopf and the probes) with the credentials of `kubeauth.py` (the pod's "
    "ServiceAccount, its token read again every minute and after a 401; or a kubeconfig: "
    "CA, client certificates, token or tokenFile, basic auth, `proxy-url`, "
    "`tls-server-name`; exec plugins and auth-providers through the `kubernetes` loader, "
    "imported only then). The client's `CoreV1Api` took 0.6 s and 22 MiB to build.",
    "- **kopf without the client.** kopf imports the `kubernetes` client's models at "
    "import whenever the package is installed: the runner hides the package while kopf "
    "is imported (`runner.import_kopf`), 22 MiB and 0.25 s less.",
    "- **Watches on the event loop.** A watch stream is read by aiohttp, a page decoded "
    "on the loop (msgspec holds the GIL: the thread pool bought nothing, "
    "`benchmarks.list_speed`); no threads left in the API client.",
    "- **Per pod.** A key's claimants are a flat `(uid, value)` tuple instead of a dict "
    "of one; one `Source` object per source; keys per source kept for KitexServices "
    "only (their status is the only reader); `PodView` and the decoding structs are "
    "msgspec structs untracked by the collector; the pod feed remembers when a watch "
    "event (not a list) mentioned a pod, only until the next list.",
    "- **The write phase.** An initial sync started every service's first write at "
    "once: 1,000 plans and transactions in flight were most of the RSS slope. At most 64 "
    "syncs run against one etcd at a time now (a slow etcd holds up its own services "
    "only), and a sync's plan is no longer kept in the worker's last result (dry runs "
    "only).",
    "- **Collector pauses.** Once the initial sync is done, the runner freezes what is "
    "alive (`gc.freeze()`): later full collections no longer walk every pod's state, "
    "which stalled the event loop for tens of milliseconds at a time under churn.",
    "- **CPU per pod.** Canonical IPv4 is joined without `ipaddress`; an instance's "
    "encoding is made once (the size check and the desired state both used it); a list "
    "tells the workers once, when complete, instead of once per pod.",
    "- **Protobuf pod lists: measured, not taken.** One page of 500 kwok-like pods as "
    "client-go's protobuf serializer writes it (779 KB) and as JSON (1.41 MB): upb parses "
    "the protobuf in 1.9 ms where msgspec parses the JSON in 3.3 ms, but reading the dozen "
    "fields a view needs through upb's Python objects costs 9.7 ms more, 11.6 ms a page "
    "against 5.6 ms for msgspec's whole decode: twice the operator's CPU for reading, "
    "about 1.2 s more at 100,000 pods (200 pages). Protobuf would spare the API server "
    "its JSON encoding of ~350 MB, on the same two cores, which may well be worth more: "
    "the next experiment (a switch between the two, and a 100,000-pod run of each), not "
    "made in this round.",
    "- **Not changed: the debounce.** A binding still waits 20 ms after a change to "
    "gather a burst into one write, the floor of the operator's share of churn; a "
    "shorter one needs the churn runs at 100,000 pods to weigh the extra etcd writes.",
]


def _second_reading(reduced: dict[str, Any], large: dict[str, Any]) -> list[str]:
    """What the reduced run says, next to the first round's figures of the same sizes."""
    lines = []
    small = reduced["sizes"].get("100")
    steps = [step for step in reduced.get("imports", []) if "no longer" not in step[0]]
    if small is not None and steps:
        lines.append(
            f"- **Start-up.** /readyz came {small['readyz_s']:.2f} s after the process "
            f"started; a fresh interpreter importing what the operator imports takes "
            f"{sum(step[1] for step in steps):.2f} s of that here (the operator's own "
            "modules are compiled at every start on this machine, PYTHONDONTWRITEBYTECODE "
            "and an editable install; the image has their bytecode), the rest is kopf's and "
            "the controller's start, the lists and the first writes.")
    for n, r in sorted(reduced["sizes"].items(), key=lambda kv: int(kv[0])):
        old = large["sizes"].get(n)
        if old is None or int(n) < 1000:
            continue
        lines.append(
            f"- **{int(n):,} pods.** The Go list took {r['go_list_s']:.2f} s against "
            f"{old['go_list_s']:.2f} s in the first round (load {r.get('loadavg_1m', 0):.1f} "
            f"as the sync ended: the machine was busier); the operator's ratio to it went "
            f"from {old['seconds'] / old['go_list_s']:.1f}x to "
            f"{r['seconds'] / r['go_list_s']:.1f}x, its peak RSS from "
            f"{old['peak_rss_mib']:.0f} to {r['peak_rss_mib']:.0f} MiB.")
    return lines


def second_round(reduced: dict[str, Any] | None, large: dict[str, Any]) -> list[str]:
    """The second round's figures: cluster-free before/after, and the reduced run."""
    lines = ["### Second round (after the changes below)", "",
             "Measured without a cluster, on this machine, before and after the round:", "",
             "| measure | before | after |", "| --- | ---: | ---: |",
             *[f"| {name} | {before} | {after} |" for name, before, after in SECOND_ROUND_BENCH]]
    if reduced is None:
        return [*lines, "", *SECOND_ROUND_CHANGES]
    lines += ["", "A reduced run (`python -m benchmarks --large-reduced "
             f"{','.join(sorted(reduced['sizes'], key=int))}`): the same cluster, pods and "
             "yardstick as above, only these sizes (the 100,000 pods take half an hour to "
             "create, longer than the quiet slot the machine had), no churn"
             + (f", started {reduced['started']}" if reduced.get("started") else "")
             + ". The load column is the machine's 1-minute load average as the sync ended "
             "(2 cores).", "",
             "| pods (ready) | Go list, best of 3 (s) | operator: start to all keys (s) | ratio "
             "| /readyz (s) | operator CPU (s) | peak RSS (MiB) | load | first round: "
             "seconds, /readyz, RSS |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for n, r in sorted(reduced["sizes"].items(), key=lambda kv: int(kv[0])):
        old = large["sizes"].get(n)
        ready = _seconds(old.get("readyz_s")) if old else "-"
        before = (f"{old['seconds']:.1f} s, {ready}{' s' if ready != '-' else ''}, "
                  f"{old['peak_rss_mib']:.0f} MiB" if old else "-")
        lines.append(
            f"| {int(n):,} | {r['go_list_s']:.2f} | {r['seconds']:.1f} | "
            f"{r['seconds'] / r['go_list_s']:.1f}x | {_seconds(r.get('readyz_s'))} | "
            f"{r['cpu_s']:.1f} | {r['peak_rss_mib']:.0f} | {r.get('loadavg_1m', math.nan):.1f} "
            f"| {before} |")
    small = reduced["sizes"].get("100")
    if small is not None:
        lines += ["", "| target (issue 18) | result | verdict |", "| --- | --- | --- |",
                  f"| start-up: process start to /readyz with 100 pods < {READY_TARGET_S:.0f} s "
                  f"| {small['readyz_s']:.2f} s | "
                  f"{_verdict(small['readyz_s'] < READY_TARGET_S)} |",
                  f"| baseline: peak RSS at 100 pods < {BASELINE_TARGET_MIB:.0f} MiB | "
                  f"{small['peak_rss_mib']:.0f} MiB | "
                  f"{_verdict(small['peak_rss_mib'] < BASELINE_TARGET_MIB)} |"]
    lines += ["", *_second_reading(reduced, large)]
    if reduced.get("imports"):
        lines += ["", "What the process holds before the first pod now "
                  "(`large.import_costs`, as above):", "",
                  "| step | seconds | RSS after (MiB) |", "| --- | ---: | ---: |",
                  *[f"| {name} | {seconds:.2f} | {rss:.0f} |"
                    for name, seconds, rss in reduced["imports"]]]
    return [*lines, "", *SECOND_ROUND_CHANGES]


def section(large: dict[str, Any]) -> list[str]:
    top = max(int(n) for n in large["sizes"])
    lines = ["## At 100,000 pods (`make bench-large`)", "",
             "One run of `python -m benchmarks --large`: a fresh cluster with 10 kwok nodes, "
             "pods over 1,000 services (100 a service at 100,000) written by `kitex-pods` "
             "(Go, 64 requests in flight), the operator started beside them into a fresh "
             "etcd at each size. The yardstick is `kitex-pods list`: client-go, protobuf, "
             "pages of 500, the fastest any client reads the same pods, run three times "
             "just before the operator (best kept).", "", *_targets(large), "",
             *_sizes(large)]
    if large["churn"]:
        lines += ["", *_churn(large, top)]
    if large["leases"]:
        lines += ["", "### etcd under one big lease", "",
                  "A fresh etcd, no Kubernetes (benchmarks/leases.py): a writer puts one key "
                  "at a time while 10,000 keys on one lease are revoked or expire, then the "
                  "same keys on 10 leases of 1,000; last, 500 puts onto a lease holding "
                  "no key and onto one holding 10,000. etcd applies a revocation as one "
                  "entry deleting all its keys, so the writer waits behind it once.", "",
                  *_leases(large), "", *_lease_verdict(large)]
    if large.get("imports"):
        lines += ["", "### What the process holds before the first pod", "",
                  "A fresh interpreter importing what the operator imports, one step at a "
                  "time (`large.import_costs`): the resident memory after each step and the "
                  "time it took (no bytecode cache for the operator's own modules when "
                  "PYTHONDONTWRITEBYTECODE is set, as on this machine).", "",
                  "| step | seconds | RSS after (MiB) |", "| --- | ---: | ---: |",
                  *[f"| {name} | {seconds:.2f} | {rss:.0f} |"
                    for name, seconds, rss in large["imports"]]]
    lines += ["", "### Reading the misses", "", *_misses(large)]
    lines += ["", "### What changed for these figures", "",
              "- Pods are decoded straight into their views (`kube/podwire.py`, msgspec "
              "structs naming only the fields read): 5x less CPU than `json` per page "
              "(docs/dependencies.md has the measurement against orjson).",
              "- List pages are prefetched: the API server encodes the next page while the "
              "operator applies the current one.",
              "- With 1,000 services, three scans of every service per sync made the "
              "initial sync O(services^2): nesting ranges now come from an index "
              "(`ranges.py`), ownership records are indexed by service (`LeaseRecords`), "
              "and healthy services re-check etcd at a random point of the last quarter "
              "of observeDelay instead of all in one instant.",
              "- Pods of one Deployment share their label, annotation and port objects "
              "(2.2 -> 1.65 KB of Python heap per pod); `cryptography` is imported only "
              "when a client certificate is checked (11 MiB less at start).",
              "- `change_to_etcd_seconds` has buckets every 1 to 2 ms up to 20 ms."]
    lines += ["", "### Scale-out, on paper", "", *_fleet(large)]
    lines += ["", *second_round(load(LARGE_REDUCED), large)]
    return lines
