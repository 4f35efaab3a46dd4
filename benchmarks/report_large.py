"""The ``make bench-large`` section of docs/benchmarks.md, from benchmarks-large.json.

Its own file of figures, so that ``make bench`` (which writes the rest of the
page from benchmarks.json) keeps it, and the other way round. The verdicts on
issue 18's targets and the extrapolation to 500,000 pods are computed from
the figures, never written by hand.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from .rounds import (
    CHURN_10K,
    CHURN_AB,
    EIGHTH_ROUND_CHANGES,
    ELEVENTH_ROUND_CHANGES,
    FIFTH_ROUND_CHANGES,
    FOURTH_ROUND_CHANGES,
    IDLE_PAIRS,
    NINTH_ROUND_CHANGES,
    PAGES,
    ROUND1_CHANGES,
    SECOND_ROUND_BENCH,
    SECOND_ROUND_CHANGES,
    SETUPS_10K,
    SEVENTH_ROUND_CHANGES,
    SIXTH_ROUND_CHANGES,
    STARTUP_AB,
    TENTH_ROUND_CHANGES,
    THIRD_ROUND_CHANGES,
    THIRTEENTH_ROUND_CHANGES,
    TWELFTH_ROUND_CHANGES,
)

SYNC_TARGET_S = 20.0
LIMIT_RATIO = 1.5
RSS_TARGET_MIB = 300.0
SLOPE_TARGET_KIB = 1.5
OWN_P99_TARGET_MS = 20.0
READY_TARGET_S = 1.0
BASELINE_TARGET_MIB = 90.0
FLEET = 500_000
DOCS = Path(__file__).resolve().parents[1] / "docs"
# The latest reduced run (``--large-reduced``): the start-up figure, repeated starts at
# 100 pods, and the Go list asked for JSON beside protobuf.
LARGE_REDUCED = DOCS / "benchmarks-large-reduced.json"
# Earlier rounds, kept for the comparison: the first 100,000-pod run, and the second
# round's reduced run (100 and 10,000 pods).
ROUND1 = DOCS / "benchmarks-large-round1.json"
ROUND2 = DOCS / "benchmarks-large-round2.json"
ROUND3 = DOCS / "benchmarks-large-round3.json"  # the third round's 100,000-pod run
ROUND4 = DOCS / "benchmarks-large-round4.json"  # the fourth round's
# The fifth round's first run of the same code, hours before (the sync once; churn on a core
# of its own at 100, 200 and 400/s): the spread between two runs of one machine.
ROUND5_FIRST = DOCS / "benchmarks-large-round5-first.json"
ROUND5 = DOCS / "benchmarks-large-round5.json"  # the fifth round's second run, its whole benchmark
ROUND6 = DOCS / "benchmarks-large-round6.json"  # the sixth round's
# The seventh round's first run, before its keepalive and settling changes
ROUND7_FIRST = DOCS / "benchmarks-large-round7-first.json"
ROUND7 = DOCS / "benchmarks-large-round7.json"  # the seventh round's second run
ROUND8 = DOCS / "benchmarks-large-round8.json"  # the eighth round's
ROUND9 = DOCS / "benchmarks-large-round9.json"  # the ninth round's
ROUND10 = DOCS / "benchmarks-large-round10.json"  # the tenth round's
ROUND11 = DOCS / "benchmarks-large-round11.json"  # the eleventh round's
ROUND12_FIRST = DOCS / "benchmarks-large-round12-first.json"  # the twelfth's first run
ROUND12 = DOCS / "benchmarks-large-round12.json"  # the twelfth's second run


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _seconds(value: float | None) -> str:
    """A duration, or "-" where the run did not record it (NaN in older files)."""
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def _load(r: dict[str, Any]) -> str:
    return f"{r['loadavg_1m']:.1f}" if "loadavg_1m" in r else "-"


def load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _sizes(large: dict[str, Any]) -> list[str]:
    as_json = any("go_list_json_s" in r for r in large["sizes"].values())
    lines = ["| pods (ready) | instance keys | pods created in (s) | all ready after (s) "
             "| Go list, best of 3 (s) | " + ("the same as JSON (s) | " if as_json else "")
             + "operator: start to all keys (s) | ratio "
             "| /readyz (s) | operator CPU (s) | peak RSS (MiB) | etcd requests | load |",
             "| ---: | ---: | ---: | ---: | ---: | " + ("---: | " if as_json else "")
             + "---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, r in sorted(large["sizes"].items(), key=lambda kv: int(kv[0])):
        json_list = f"{r['go_list_json_s']:.2f} | " if "go_list_json_s" in r else "- | "
        synced = f"{r['seconds']:.1f}"
        if len(r.get("sync_runs_s", ())) > 1:  # a median: the runs beside it
            synced += f" (median of {', '.join(f'{s:.1f}' for s in r['sync_runs_s'])})"
        lines.append(
            f"| {int(n):,} | {r['keys']:,} | {r['create_s']:.0f} | {r['ready_s']:.0f} | "
            f"{r['go_list_s']:.2f} | {json_list if as_json else ''}{synced} | "
            f"{r['seconds'] / r['go_list_s']:.1f}x | {_seconds(r.get('readyz_s'))} | "
            f"{r['cpu_s']:.1f} | {r['peak_rss_mib']:.0f} | {r['etcd_requests']:,.0f} | "
            f"{_load(r)} |")
    return lines


def _startup(large: dict[str, Any], reduced: dict[str, Any] | None) -> tuple[float, str]:
    """(seconds, how measured) to /readyz at 100 pods: the median of the repeated starts
    of the latest run that made them, else the one start of the large run."""
    for run, name in ((large, "this run"), (reduced, "the reduced run")):
        small = (run or {}).get("sizes", {}).get("100")
        if small and small.get("readyz_runs_s"):
            runs = small["readyz_runs_s"]
            return statistics.median(runs), (
                f"median of {len(runs)} starts in {name} "
                f"({min(runs):.2f} to {max(runs):.2f} s)")
    small = large["sizes"].get("100", {})
    return small.get("readyz_s", math.nan), "one start"


CHURN_SETUPS = (  # (runs, CPU, where the operator ran), the deciding one first
    ("churn_isolated", "cpu_isolated", "the operator and its etcd on a core of their own"),
    ("churn", "cpu", "beside the API server on the two shared cores"),
)
PHASES = ("queued", "gathered", "view", "written", "etcd")


def _phases(r: dict[str, Any]) -> str:
    """Each phase's p99 of the share, etcd's answer time, the loop's lag, and the share
    less etcd's part (runs before the fifth round split neither etcd nor "own" out)."""
    p = r.get("phases_p99_ms")
    if not p:
        return "- | - | -"
    server = f"; etcd's server {p['etcd server txn']:g}" if "etcd server txn" in p else ""
    return (" / ".join(f"{p[name]:g}" if name in p else "-" for name in PHASES)
            + f" ({p['etcd txn']:g}{server}) | <= {p['loop lag']:g} | "
            + (f"<= {p['own']:g}" if "own" in p else "-"))


def _churn_table(runs: dict[str, Any], cpus: dict[str, Any]) -> list[str]:
    lines = ["| target rate/s | achieved/s | events | end to end p50 / p99 ms "
             "| API round trip p50 / p99 ms | operator's share p50 / p99 ms "
             "| p99 by phase ms: queued / gathered / view / written / etcd (etcd's answer) "
             "| event loop lag p99 ms | the share less etcd's part, p99 ms "
             "| garbage collections | operator CPU (% of a core) "
             "| operator CPU s per 1,000 events |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: "
             "| ---: |"]
    for rate, r in sorted(runs.items(), key=lambda kv: int(kv[0])):
        cpu = cpus[rate]["operator"]
        phases = _phases(r)
        troubles = window_troubles(r.get("unseen", 0), r.get("pod_relists", 0),
                                   r.get("pod_watch_errors", 0), r.get("pod_resyncs"))
        lines.append(
            f"| {rate} | {r['achieved_rate']:.0f}"
            + (f" ({', '.join(troubles)})" if troubles else "")
            + f" | {r['events']:.0f} | {r['p50_ms']:.0f} / "
            f"{r['p99_ms']:.0f} | {r['api_p50_ms']:.0f} / {r['api_p99_ms']:.0f} | "
            f"<= {r['own_p50_ms']:.0f} / <= {r['own_p99_ms']:.0f} | "
            f"{phases} | {describe_gc(r.get('gc'))} | {cpu:.0f} | "
            f"{cpu / 100 / r['achieved_rate'] * 1000:.2f} |")
    return lines


def _churn(large: dict[str, Any], top: int) -> list[str]:
    lines = [f"Churn with {top:,} pods held (1,000 services): readiness flips (9 in 10) and "
             "deletions (1 in 10) of pods of every service, from `kitex-churn`; same "
             "measures as the churn section below. First with every process free to use "
             "both cores, then with the operator and its etcd pinned to one core and "
             "everything else (the API server, its etcd, kwok, the controllers, the load "
             "generator, this benchmark) to the other (`harness.isolated`), as in a cluster "
             "where the operator does not run beside the API server. The phases come from "
             "`kitex_etcd_operator_change_phase_seconds`: queued (from the change reaching "
             "the operator to its service's next write cycle, a write in flight included), "
             "gathered (the debounce), view (waiting for the watches to be current), "
             "written (the owner, the diff, building the transaction; before the fifth "
             "round's run this included etcd's answer too) and etcd (waiting for etcd's "
             "answers in that write); in brackets etcd's answer time per transaction as "
             "the operator saw it, from `etcd_request_duration_seconds`, and "
             "where measured etcd's own handling time, from its "
             "`grpc_server_handling_seconds`, buckets of 5, 10, 25, 50 and 100 ms). Each "
             "column is its own p99, so they do not add up to the share's. The share less "
             "etcd's part is `change_own_seconds`, per change: what the operator itself "
             "adds (a write of the same service already in flight when the change came "
             "still counts in full). Garbage collections are the operator's cyclic "
             "collections in the window, from `kitex_etcd_operator_gc_pause_seconds`: how "
             "many held the loop over 5 ms, and the bucket bound of the longest. A window "
             "lasts 20 s, or as long as 2,000 changes take if longer (80 s at 25/s, from "
             "the thirteenth round; 20 s before), so that its p99 is at least its 20th "
             "slowest change."]
    for runs_key, cpu_key, where in CHURN_SETUPS:
        if large.get(runs_key):
            lines += ["", f"{where[0].upper()}{where[1:]}:", "",
                      *_churn_table(large[runs_key], large[cpu_key])]
        elif runs_key in large:
            lines += ["", f"{where[0].upper()}{where[1:]}: no figures in this run, "
                      "which ended before these runs were done (this round's changes below "
                      "say why); the rounds table has the last run that has them."]
    return lines


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


def _targets(large: dict[str, Any], reduced: dict[str, Any] | None = None) -> list[str]:
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
        ready, how = _startup(large, reduced)
        lines += [f"| start-up: process start to /readyz with 100 pods < {READY_TARGET_S:.0f} s | "
                  f"{ready:.2f} s, {how} | {_verdict(ready < READY_TARGET_S)} |",
                  f"| baseline: peak RSS at 100 pods < {BASELINE_TARGET_MIB:.0f} MiB | "
                  f"{small['peak_rss_mib']:.0f} MiB | "
                  f"{_verdict(small['peak_rss_mib'] < BASELINE_TARGET_MIB)} |"]
    for runs_key, cpu_key, where in CHURN_SETUPS:
        rate, c, how = _judged(large.get(runs_key) or {})
        if c is None:
            continue
        less_etcd = (c.get("phases_p99_ms") or {}).get("own")
        lines.append(f"| operator's share p99 < {OWN_P99_TARGET_MS:.0f} ms at the highest "
                     f"rate sustained, {where} | <= {c['own_p99_ms']:.0f} ms {how}"
                     + (f" (less etcd's part: <= {less_etcd:g} ms, reported)"
                        if less_etcd is not None else "")
                     + f" | {_verdict(c['own_p99_ms'] < OWN_P99_TARGET_MS)} |")
        cpu = large[cpu_key][str(rate)]["operator"]
        lines.append(f"| CPU per 1,000 events, {where} (reported) | "
                     f"{cpu / 100 / c['achieved_rate'] * 1000:.2f} s {how} | - |")
    return lines


def _judged(runs: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str]:
    """The run a verdict is made on: the highest rate sustained; failing that, the
    lowest rate asked for, at the rate the API server achieved then. With a note on
    which it is."""
    rate, c = _sustained(runs)
    if c is not None or not runs:
        return rate, c, f"at {rate}/s"
    rate, c = min(((int(k), v) for k, v in runs.items()), key=lambda kv: kv[0])
    return rate, c, (f"at {c['achieved_rate']:.0f}/s, all the API server sustained when "
                     f"asked for {rate}/s")


def _sustained(runs: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """The churn run at the highest rate the API server sustained, or (0, None):
    95 % of the target, no request refused, every change in etcd in the end and no pod
    watch failing (a watch the API server let stall is a rate it did not keep up with)."""
    return max(((int(k), v) for k, v in runs.items()
                if v["achieved_rate"] >= 0.95 * int(k) and not v["errors"]
                and not v.get("unseen") and not v.get("pod_watch_errors")),
               default=(0, None), key=lambda kv: kv[0])


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
        "API server encodes ~2 KB of protobuf per pod, a page after the other, and the "
        "operator decodes it on one core (the GIL). Past a few hundred thousand pods, the "
        "list alone takes longer than a lease TTL would tolerate on a restart, and a 410 "
        "Gone relist costs the same again. Protobuf, large pages and reading only the "
        "needed fields are done already; what is left is the API server's own time per "
        "pod.",
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


def window_troubles(unseen: int, relists: int, watch_errors: int,
                    resyncs: int | None = None) -> list[str]:
    """What went wrong in a churn window, as the report and the log say it: changes
    etcd never showed, and the pod watch's relists (the periodic resyncs among them,
    where the run counted them apart) and resumed streams."""
    relisted = f"{relists} {'relist' if relists == 1 else 'relists'} of the pods"
    if resyncs is not None:
        relisted += (" (the periodic resync)" if resyncs == relists else
                     f" ({resyncs} the periodic resync)" if resyncs else " (after a fault)")
    return [text for n, text in (
        (unseen, f"{unseen} not in etcd 2 min after"), (relists, relisted),
        (watch_errors, f"{watch_errors} {'pod watch' if watch_errors == 1 else 'pod watches'}"
                       " resumed")) if n]


def describe_gc(gc: dict[str, float] | None) -> str:
    """A churn window's garbage collections, as the report and the log say them (runs
    before the tenth round did not time them)."""
    if gc is None:
        return "-"
    if not gc["collections"]:
        return "none"
    busy = gc.get("busy")  # counted from the eleventh round (collections at quiet moments)
    cpu = gc.get("longest_cpu_ms")  # from the twelfth round, with the oldest generation's
    return (f"{gc['over_5ms']:.0f} of {gc['collections']:.0f} over 5 ms, the longest "
            f"<= {gc['longest_ms']:g} ms"
            + ("" if cpu is None else f" ({cpu:g} ms of CPU at most)")
            + ("" if busy is None else f", {busy:.0f} with a change in flight")
            + ("" if cpu is None else f", {gc['full']:.0f} of the oldest generation "
               f"(<= {gc['longest_full_ms']:g} ms)"))


def _round_row(name: str, run: dict[str, Any] | None, startup: tuple[float, str] | None
               ) -> str:
    """One round's figures in the rounds table; "-" where that round did not measure."""
    if run is None:
        return f"| {name} | - | - | - | - | - | - |"
    sizes = run["sizes"]

    def sync(n: str) -> str:
        r = sizes.get(n)
        return (f"{r['seconds']:.1f} s, {r['seconds'] / r['go_list_s']:.1f}x, "
                f"{r['peak_rss_mib']:.0f} MiB" if r else "-")

    small = sizes.get("100")
    ready = startup[0] if startup else (small or {}).get("readyz_s", math.nan)
    churn = "-"
    for runs_key, _, _ in CHURN_SETUPS:
        rate, c = _sustained(run.get(runs_key) or {})
        if c is not None and churn == "-":
            churn = f"<= {c['own_p99_ms']:.0f} ms at {rate}/s" + (
                " (own core)" if runs_key == "churn_isolated" else "")
    slope = f"{_slope(run)[2]:.2f} KiB" if "100000" in sizes and len(sizes) > 1 else "-"
    return (f"| {name} | {sync('10000')} | {sync('100000')} | {slope} | "
            f"{_seconds(ready)} | {small['peak_rss_mib']:.0f} MiB | {churn} |"
            if small else f"| {name} | {sync('10000')} | {sync('100000')} | {slope} | - | - "
            f"| {churn} |")


def _rounds(large: dict[str, Any], reduced: dict[str, Any] | None) -> list[str]:
    """The rounds side by side: what each change bought, at the sizes measured."""
    third, fourth, first, fifth = (load(ROUND3), load(ROUND4), load(ROUND5_FIRST),
                                   load(ROUND5))
    sixth, seventh_first, seventh = load(ROUND6), load(ROUND7_FIRST), load(ROUND7)
    eighth, ninth, tenth = load(ROUND8), load(ROUND9), load(ROUND10)
    eleventh, twelfth_first, twelfth = load(ROUND11), load(ROUND12_FIRST), load(ROUND12)
    if twelfth is not None and twelfth.get("started") == large.get("started"):
        twelfth = None  # the twelfth round's second run is this run
    return ["| round | 10,000 pods: sync, ratio to the Go list, peak RSS | 100,000 pods: the "
            "same | RSS slope a pod | /readyz at 100 pods (s) | RSS at 100 pods "
            "| operator's share p99 of churn |",
            "| --- | --- | --- | ---: | ---: | ---: | --- |",
            _round_row("first (the initial profile's fixes)", load(ROUND1), None),
            _round_row("second, reduced run (aiohttp API client, per-pod memory)",
                       load(ROUND2), None),
            _round_row("third (leading-edge debounce, kopf after the first sync)",
                       third, _startup(third, reduced) if third else None),
            _round_row("fourth (protobuf pod lists, 2,000 a page, tokens read ahead)",
                       fourth, _startup(fourth, None) if fourth else None),
            _round_row("fifth, a first run (the sync once)", first,
                       _startup(first, None) if first else None),
            *([_round_row("fifth, a second run the same day (nesting checks against the "
                          "records indexed; the operator's share on a core of its own too)",
                          fifth, _startup(fifth, None))] if fifth else []),
            *([_round_row("sixth (aiohttp without the system CAs, the collector paused "
                          "until the first sync is done)", sixth, _startup(sixth, None))]
              if sixth else []),
            *([_round_row("seventh, a first run the same day (pods from the watch cache in "
                          "one streamed answer, a first registration in 2 etcd requests)",
                          seventh_first, _startup(seventh_first, None))]
              if seventh_first else []),
            *([_round_row("seventh, a second run (and keepalives many a stream, each sync "
                          "on a quiet control plane)", seventh, _startup(seventh, None))]
              if seventh else []),
            *([_round_row("eighth (small transactions of many services share one etcd "
                          "request)", eighth, _startup(eighth, None))] if eighth else []),
            *([_round_row("ninth (keepalives spread out, each lease a phase of its own)",
                          ninth, _startup(ninth, None))] if ninth else []),
            *([_round_row("tenth (one alarm clock for the workers' sleeps)",
                          tenth, _startup(tenth, None))] if tenth else []),
            *([_round_row("eleventh (garbage collections at quiet moments)",
                          eleventh, _startup(eleventh, None))] if eleventh else []),
            *([_round_row("twelfth, a first run (churn on a core of their own from 25/s, "
                          "a resync every 30 min)", twelfth_first,
                          _startup(twelfth_first, None))] if twelfth_first else []),
            *([_round_row("twelfth, a second run (the first writes frozen with the heap, a "
                          "read keeping the records of unchanged keys)", twelfth,
                          _startup(twelfth, None))] if twelfth else []),
            _round_row("thirteenth, this run (the same code; churn windows of 2,000 "
                       "changes at least)", large, _startup(large, None))]


def _reading(large: dict[str, Any], reduced: dict[str, Any] | None) -> list[str]:
    """Where the time and memory went, from the figures."""
    top = max(int(n) for n in large["sizes"])
    r = large["sizes"][str(top)]
    lines = [
        f"- **Sync at {top:,}.** The operator used {r['cpu_s']:.1f} s of CPU in its "
        f"{r['seconds']:.1f} s (imports and kopf included); the rest of the time it "
        "waited for the API server, on the two cores it shares with the operator, etcd "
        "and kwok. The Go list of the same pods took "
        f"{r['go_list_s']:.1f} s, {r['go_list_cpu_s']:.1f} s of it the client's CPU: "
        f"about {r['go_list_s'] - r['go_list_cpu_s']:.0f} s is the API server's. The "
        "operator asks for the same protobuf, but in one answer from the API server's "
        "watch cache, decoded as it arrives, where the yardstick's pages of 500 come from "
        "etcd after the first (see *Pages* below and the seventh round's changes). Its CPU "
        "goes to reading pods (decoding and the desired state, ~50 us a pod) and to the "
        "first writes (1,000 transactions holding every key and their leases' records, "
        "~3 s of the sync on the hand-run cluster)."]
    json_rows, which = [], ""
    for run, name in ((large, "this run"), (reduced, "the reduced run")):
        json_rows = sorted((int(n), v) for n, v in ((run or {}).get("sizes") or {}).items()
                           if "go_list_json_s" in v and int(n) >= 1000)[-1:]
        if json_rows:
            which = name
            break
    for n, v in json_rows:
        text = (f"- **JSON against protobuf.** With {n:,} pods the same Go list took "
                f"{v['go_list_s']:.2f} s asking for protobuf and {v['go_list_json_s']:.2f} s "
                f"asking for JSON (best of 3 each, {which}): "
                f"{v['go_list_json_s'] / v['go_list_s']:.1f}x.")
        if "go_list_json_cpu_s" in v:
            proto = v["go_list_s"] - v["go_list_cpu_s"]
            as_json = v["go_list_json_s"] - v["go_list_json_cpu_s"]
            text += (f" Pages come one after the other, so the list's time less the client's "
                     f"CPU is about the API server's part: {proto:.2f} s for protobuf, "
                     f"{as_json:.2f} s for JSON; the Go client spent "
                     f"{v['go_list_cpu_s']:.2f} and {v['go_list_json_cpu_s']:.2f} s "
                     "decoding.")
        text += (f" The operator's sync took {v['seconds']:.2f} s with {v['cpu_s']:.2f} s of "
                 f"CPU (its start and 1,000 services' first writes included): "
                 f"{v['seconds'] / v['go_list_s']:.2f}x the Go client's protobuf list. The "
                 "third round read JSON as fast as client-go did (1.09x its JSON list) and "
                 "was still 2.2x the protobuf list: the API server's encoding was the gap, "
                 "so the operator now asks for protobuf.")
        lines.append(text)
    lines.append(
        f"- **Memory.** {_slope(large)[2]:.2f} KiB of peak RSS a pod between "
        f"{_slope(large)[0]:,} and {top:,} pods: the Python heap's ~1.24 KB a pod "
        "(`benchmarks.pod_memory`) plus the pages in flight and the allocator's slack.")
    ready, how = _startup(large, reduced)
    steps = [step for step in ((reduced or large).get("imports") or [])
             if "no longer" not in step[0] and "after the first sync" not in step[0]]
    if steps and not math.isnan(ready):
        lines.append(
            f"- **Start-up.** /readyz {ready:.2f} s after the process started ({how}). A "
            f"fresh interpreter importing what the operator needs before its first sync "
            f"takes {sum(step[1] for step in steps):.2f} s of that (`large.import_costs`, "
            "kopf left out: it is imported after the first sync now); the rest is the "
            "lists, the first writes of 100 services into a fresh etcd and the "
            "interpreter's own start. Started alternately on one cluster, the code of two "
            "rounds did not differ: "
            + "; ".join(f"{name}, median {median} s ({spread})"
                        for name, median, spread in STARTUP_AB)
            + ". The spread is the machine's.")
    lines += _reading_churn(large)
    return lines


def _reading_churn(large: dict[str, Any]) -> list[str]:
    """The share's tail, where it comes from, by setup."""
    found = []
    for runs_key, _, where in CHURN_SETUPS:
        _, c, how = _judged(large.get(runs_key) or {})
        if c is None:
            continue
        p = c.get("phases_p99_ms") or {}
        text = (f"{where[0].upper()}{where[1:]}: p50 <= {c['own_p50_ms']:.0f} ms and p99 <= "
                f"{c['own_p99_ms']:.0f} ms {how}")
        if p:
            text += (f" (the event loop late by <= {p['loop lag']:g} ms, etcd's answer "
                     f"<= {p['etcd txn']:g} ms at the p99)")
        found.append(text)
    if not found:
        return []
    return [
        "- **The operator's share of churn**, from the change reaching the operator to etcd "
        "acknowledging its write. " + ". ".join(found) + ". On the shared cores the "
        "operator waits for a CPU: the two cores are busy with the API server, kwok and "
        "two etcds, the loop's 100 ms timer fires late, and every change and etcd answer "
        "in flight waits with it. At 10,000 pods with a core of its own (the table below) "
        "the loop kept time and the tail was etcd's answer as the operator saw it; traced "
        "change by change (the eighth round), that answer was mostly the operator's own "
        "requests: the pod watch brings changes in bursts of tens, each service wrote its "
        "own transaction, and the last of a burst waited for the others' requests while "
        "etcd handled each in under 5 ms. They share etcd requests now. At 100,000 pods "
        "the API server left with one core does not keep up (the rates achieved fall short "
        "of those asked): its watch falls behind, the operator then waits for its view to be "
        "current, by design, and changes arrive in bursts; those runs say more about the "
        "API server than about the operator, and the two runs of the day differ widely "
        "(the rounds table). "
        "At 10,000 pods and 100/s, by hand, "
        "the setups alternating on one operator (the share's p50 / p99, the share less "
        "etcd's part, the etcd phase with etcd's own handling in brackets, the loop's lag; "
        "p99s in ms):", "",
        "| setup | achieved/s | share | less etcd's part | etcd phase | loop lag |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {' | '.join(row)} |" for row in SETUPS_10K]]


def section(large: dict[str, Any]) -> list[str]:
    top = max(int(n) for n in large["sizes"])
    reduced = load(LARGE_REDUCED)
    lines = ["## At 100,000 pods (`make bench-large`)", "",
             "One run of `python -m benchmarks --large`"
             + (f", started {large['started']}" if large.get("started") else "")
             + ": a fresh cluster with 10 kwok nodes, "
             "pods over 1,000 services (100 a service at 100,000) written by `kitex-pods` "
             "(Go, 64 requests in flight), the operator started beside them into a fresh "
             "etcd at each size. The yardstick is `kitex-pods list`: client-go, protobuf, "
             "pages of 500, the fastest any client reads the same pods. "
             + ("The yardstick and the operator ran one after the other three times at "
                "each size: the best of the lists against the median of the syncs. "
                if any("sync_runs_s" in r for r in large["sizes"].values()) else
                "It ran three times just before the operator (best kept). ")
             + "The load column is the machine's 1-minute load average as the (last) sync "
             "ended (2 cores)."
             + (" The operator ran with "
                + ", ".join(f"`{name}={value}`" for name, value in
                            large["operator_env"].items())
                + ", as docs/install.md advises at this size: the periodic resync, a list "
                "of every pod from the API server, came in the churn windows on a core of "
                "their own that fell behind in the tenth and eleventh rounds, when that "
                "API server had one core."
                if large.get("operator_env") else ""), "",
             *_targets(large, reduced), "", *_sizes(large)]
    if reduced is not None:
        lines += ["", "The third round's reduced run (`python -m benchmarks --large-reduced "
                  f"{','.join(sorted(reduced['sizes'], key=int))}`"
                  + (f", started {reduced['started']}" if reduced.get("started") else "")
                  + "): the same kind of cluster and pods, only these sizes, the operator "
                  "started five more times at 100 pods, and the Go list also asked for JSON.",
                  "",
                  *_sizes(reduced)]
    if large["churn"]:
        lines += ["", *_churn(large, top)]
    lines += ["", "Churn at 10,000 pods over 1,000 services, by hand on the same cluster "
              "and with the same churn, right after the initial sync, before and after the "
              "first etcd check's spread (below), which the 100,000-pod run above has:",
              "",
              "| first periodic check after the initial sync | target (achieved) rate/s "
              "| operator's share p50 / p99 ms | end to end p99 ms |",
              "| --- | ---: | ---: | ---: |",
              *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in CHURN_10K], "",
              "The share counts every write of a change (kwok's own status updates "
              "included, ~1.9 writes an event), the end-to-end figures only the churn's "
              "changes, from the request to the etcd event; so the two p99s need not "
              "agree. The event loop itself is seldom what events wait for: during the first "
              "200/s run, 2 of 522 ticks of the lag histogram's 100 ms timer came 50 ms "
              "late or more, 18 more than 10 ms. The share's tail above 20 ms (3 % of "
              "writes at 100/s) is the etcd write itself on two cores the API server "
              "keeps busy (its p99 in `sync_duration_seconds` reaches 100 ms), and a "
              "change arriving during its service's write waits for that write too."]
    lines += ["", "### Pages: their size, and when the next one is asked for", "",
              "By hand, on a cluster made as this run makes it (100,000 ready pods over "
              "1,000 services): every pod of the cluster listed, first reading only each "
              "page's token (the API server's time and the transfer), then decoding every "
              "pod as the operator does. The API server was still busy with kwok's "
              "readiness updates, one run each: the differences carry over, not the "
              "seconds.", "",
              "| encoding | pods a page | tokens only (s) | every pod decoded (s) |",
              "| --- | ---: | ---: | --- |",
              *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in PAGES], "",
              "On the same cluster once idle, the whole operator (start to every key in a "
              "fresh etcd) and the Go list, one after the other, three times: "
              + ", ".join(f"{op} s against {go} s" for op, go in IDLE_PAIRS) + ".", "",
              "Those pages were the fourth to sixth rounds' list. The seventh round found "
              "why pages cost so much at this size: Kubernetes 1.34 serves a paginated "
              "consistent list's first page from its watch cache and every later page from "
              "etcd. On a later cluster of the same kind, by hand: pages of 2,000 read "
              "consistently took 8.3 to 12.8 s; the whole list in one answer from the watch "
              "cache (`resourceVersionMatch=NotOlderThan` a consistent read made just "
              "before) 3.0 to 3.9 s for its 210 MB, and 4.6 s read and decoded as it "
              "streams, which the operator now does."]
    lines += ["", "### Round by round", "",
              "The same targets over the thirteen rounds of work on them (the first round's "
              "run, the second round's reduced run, the runs of the third to sixth rounds, "
              "the seventh round's two runs, the eighth to eleventh rounds', the twelfth "
              "round's two runs, this run):", "",
              *_rounds(large, reduced)]
    lines += ["", "### Reading the figures", "", *_reading(large, reduced)]
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
                  "time it took.", "",
                  "| step | seconds | RSS after (MiB) |", "| --- | ---: | ---: |",
                  *[f"| {name} | {seconds:.2f} | {rss:.0f} |"
                    for name, seconds, rss in large["imports"]]]
    lines += ["", "### Scale-out, on paper", "", *_fleet(large)]
    lines += ["", "### What changed, round by round", "",
              "**Thirteenth round** (this run):", "", *THIRTEENTH_ROUND_CHANGES, "",
              "**Twelfth round:**", "", *TWELFTH_ROUND_CHANGES, "",
              "**Eleventh round:**", "", *ELEVENTH_ROUND_CHANGES, "",
              "**Tenth round:**", "", *TENTH_ROUND_CHANGES, "",
              "**Ninth round:**", "", *NINTH_ROUND_CHANGES, "",
              "**Eighth round:**", "", *EIGHTH_ROUND_CHANGES, "",
              "**Seventh round:**", "", *SEVENTH_ROUND_CHANGES, "",
              "**Sixth round:**", "", *SIXTH_ROUND_CHANGES, "",
              "**Fifth round:**", "", *FIFTH_ROUND_CHANGES, "",
              "**Fourth round:**", "", *FOURTH_ROUND_CHANGES,
              "- **Churn at 10,000 pods and 100/s, by hand** (the operator's share p50 / "
              "p99): " + "; ".join(f"{code}'s code {share} ms ({where})"
                                   for code, share, where in CHURN_AB)
              + ": the tail moved with the cluster and the moment, not with the code.", "",
              "**Third round:**", "", *THIRD_ROUND_CHANGES, "",
              "**Second round.** Measured without a cluster, on this machine, before and "
              "after:", "", "| measure | before | after |", "| --- | ---: | ---: |",
              *[f"| {name} | {before} | {after} |" for name, before, after in SECOND_ROUND_BENCH],
              "", *SECOND_ROUND_CHANGES, "", "**First round:**", "", *ROUND1_CHANGES]
    return lines
