"""Incoming postbacks per second, against three reference views, and a burst.

    .venv/bin/python bench/ingest.py [--mode both|postgres|sqlite] [--no-burst]

For each mode (PostgreSQL + Redis with RQ workers, as in production; and the
embedded default, a SQLite file and no Redis, where the web processes
deliver), it starts gunicorn as the README does and measures with wrk, in
interleaved rounds: the trivial view /bench/ok, the one-query view
/bench/one-query, the one-write view /bench/one-write (one row stored and
committed, as the endpoint stores a request first) and the incoming postback

    GET /api/postbacks/<token>/tracker-postback?clickid=...&tracker.event=sale
        &tracker.cost=5&tracker.tid=<unique>

where every request is a new conversion of one of many seeded clients, whose
spot has one outgoing postback to a local receiver: every conversion writes
and enqueues a delivery, as in real use. It prints the medians, the ratios
to the references and the targets. The burst then sends 10,000 postbacks
from 100 concurrent callers and times how long until all are answered and
until all their deliveries reached the receiver.

Targets (issue 9): ingest >= 0.5 x the one-query view in both modes, with p99
under 100 ms at that rate; the burst all answered 2xx and all delivered.
"""

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

TARGET_RATIO = 0.5
TARGET_P99_MS = 100

# Each request a new conversion: a unique tid, and the seeded clients' click
# ids in turn from an offset (so successive runs spread over all clients).
# Arguments: the tid prefix, the file of click ids, the offset.
LUA = """
local n, prefix, clicks = 0, "", {}

function init(args)
  prefix = args[1]
  for line in io.lines(args[2]) do
    clicks[#clicks + 1] = line
  end
  n = tonumber(args[3])
end

function request()
  n = n + 1
  local path = wrk.path .. "?clickid=" .. clicks[n % #clicks + 1]
    .. "&tracker.event=sale&tracker.cost=5&tracker.tid=" .. prefix .. "-" .. n
  return wrk.format(nil, path)
end
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=["both", "postgres", "sqlite"], default="both")
    p.add_argument("--no-burst", dest="burst", action="store_false", help="skip the burst")
    # 10 s per measurement x 4 paths x 3 rounds keeps the measurements near
    # three minutes per mode on a 2-core machine, both within about 6 minutes;
    # the burst adds what its postbacks take (about a minute at the target rate).
    p.add_argument("--seconds", type=int, default=10, help="wrk duration per measurement")
    p.add_argument("--warmup", type=int, default=2, help="unrecorded wrk run per path first")
    p.add_argument("--rounds", type=int, default=3)
    # 16 connections: eight callers per web worker keep both sync workers busy
    # every moment (req/s is the server's capacity, not the callers'), while
    # the latency stays that of a short queue in front of two workers.
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--clients", type=int, default=10_000, help="seeded clients")
    p.add_argument("--workers", type=int, default=2, help="rqworkers (PostgreSQL mode)")
    p.add_argument("--burst-size", type=int, default=10_000)
    p.add_argument("--burst-callers", type=int, default=100)
    p.add_argument("--deliver-timeout", type=int, default=180, help="seconds (burst)")
    p.add_argument("--json", help=argparse.SUPPRESS)  # where a mode's child writes its result
    return p.parse_args(argv)


def main():
    common.both_modes_or_one(__file__, parse_args(), measure_mode, summary)


def seed(receiver, clients):
    """A spot with one outgoing postback to the receiver, and its clients
    (from an ad: the postback sends only for attributed clients by default)."""
    from crm.models import Client
    from postbacks.models import OutgoingPostback
    from tracker.models import Spot

    spot = Spot.objects.create(name="Bench spot", slug="bench")
    postback = OutgoingPostback(
        spot=spot,
        name="Bench receiver",
        url=f"{receiver}/postback?click_id={{click_id}}&sum={{sum}}&tid={{tid}}",
    )
    postback.full_clean()
    postback.save()
    new = (Client(spot=spot, advert_campaign_id="c1", geo="DE") for _ in range(clients))
    Client.objects.bulk_create(new, batch_size=2000)
    common.analyze()
    return spot, list(Client.objects.filter(spot=spot).values_list("click_id", flat=True))


def measure_mode(args):
    title = common.mode_title(args.mode, args.workers)
    load_before = common.loadavg()
    common.progress(f"ingest, {title}; load average {load_before}")
    with common.Run(f"ingest-{args.mode}") as run:
        receiver = common.receiver(run)
        base = common.start_app(run, args.mode, "ingest", args.workers)
        spot, click_ids = seed(receiver, args.clients)
        clicks_file = run.dir / "click_ids.txt"
        clicks_file.write_text("\n".join(click_ids) + "\n")
        common.progress(f"seeded {len(click_ids)} clients; gunicorn at {base}")

        ingest = Ingest(run, base, spot, clicks_file, args)
        urls = {
            "trivial": f"{base}/bench/ok",
            "one-query": f"{base}/bench/one-query?pk={spot.pk}",
            "one-write": f"{base}/bench/one-write",
        }

        def reference(name, seconds):
            return lambda: common.wrk(urls[name], seconds, args.connections)

        measures = {name: reference(name, args.seconds) for name in urls}
        measures["ingest"] = lambda: ingest.measure(args.seconds)
        warmups = {name: reference(name, args.warmup) for name in urls}
        warmups["ingest"] = lambda: ingest.measure(args.warmup)
        results = common.interleaved(measures, args.rounds, warmup=lambda n: warmups[n]())
        run.check_alive()
        burst = run_burst(base, spot, click_ids, receiver, args) if args.burst else None
        run.check_alive()
        problems = ingest.problems()
        common.close_database()
    load_after = common.loadavg()
    result = report(args, title, results, ingest, burst, problems, load_before, load_after)
    result["mode"] = args.mode
    return result


class Ingest:
    """The incoming postback measurement: a wrk run, then waiting until the
    deliveries it made have gone out, so the next measurement does not share
    the machine with their sending."""

    def __init__(self, run, base, spot, clicks_file, args):
        self.run, self.args = run, args
        self.url = f"{base}/api/postbacks/{spot.postback_token}/tracker-postback"
        self.script = common.lua_script(run, "ingest", LUA)
        self.clicks_file = str(clicks_file)
        self.sent = 0
        self.backlogs, self.catch_ups = [], []

    def measure(self, seconds):
        prefix = uuid.uuid4().hex[:8]
        script_args = [prefix, self.clicks_file, str(self.sent)]
        result = common.wrk(self.url, seconds, self.args.connections, self.script, script_args)
        self.sent += result["requests"]
        backlog, took = wait_delivered(self.args.deliver_timeout)
        self.backlogs.append(backlog)
        self.catch_ups.append(took)
        common.progress(
            f"  deliveries due when wrk stopped: {backlog}; all sent {took:.1f} s later"
        )
        self.run.check_alive()
        return result

    def problems(self):
        """What went wrong with the postbacks of the measurements, in words."""
        from postbacks.models import Delivery, IncomingPostback

        found = []
        not_accepted = IncomingPostback.objects.exclude(status=IncomingPostback.ACCEPTED).exclude(
            token=common.ONE_WRITE_TOKEN
        )
        if not_accepted.exists():
            first = not_accepted.order_by("id").first()
            found.append(
                f"{not_accepted.count()} postbacks not accepted (first: {first.status} "
                f"{first.http_status} {first.error[:200]!r})"
            )
        unsent = Delivery.objects.exclude(status=Delivery.SUCCESS)
        if unsent.exists():
            first = unsent.order_by("created").first()
            found.append(
                f"{unsent.count()} deliveries not delivered (first: {first.status} "
                f"{first.last_error[:200]!r})"
            )
        return found


def due_deliveries():
    from django.db.models import Q
    from django.utils import timezone

    from postbacks.models import Delivery

    due = Q(status=Delivery.PENDING, next_attempt__lte=timezone.now())
    return Delivery.objects.filter(due | Q(status=Delivery.SENDING)).count()


def wait_delivered(timeout):
    """(deliveries due now, seconds until none is): a failed attempt waits for
    its retry (minutes) and does not count as due; Ingest.problems reports it."""
    started = time.monotonic()
    backlog = left = due_deliveries()
    while left and time.monotonic() - started < timeout:
        time.sleep(0.2)
        left = due_deliveries()
    if left:
        common.progress(f"  {left} deliveries still due after {timeout} s")
    return backlog, time.monotonic() - started


# -- the burst -----------------------------------------------------------------


async def get(host, port, path):
    """One GET on a new connection (gunicorn's sync workers close every
    connection after the answer): the status code."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.read()
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


async def call_all(host, port, paths, callers, timeout=60):
    """`callers` concurrent callers share the paths: (statuses, errors, seconds each)."""
    todo = iter(paths)
    statuses, errors, latencies = [], [], []

    async def caller():
        for path in todo:
            started = time.monotonic()
            try:
                statuses.append(await asyncio.wait_for(get(host, port, path), timeout))
                latencies.append(time.monotonic() - started)
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as e:
                errors.append(f"{type(e).__name__}: {e}")

    async def report():
        while True:
            await asyncio.sleep(10)
            common.progress(f"  {len(statuses) + len(errors)} of {len(paths)} answered")

    reporter = asyncio.create_task(report())
    await asyncio.gather(*(caller() for _ in range(callers)))
    reporter.cancel()
    return statuses, errors, latencies


def run_burst(base, spot, click_ids, receiver, args):
    from postbacks.models import Delivery

    total, callers = args.burst_size, args.burst_callers
    common.progress(f"burst: {total} postbacks from {callers} concurrent callers")
    prefix = f"burst-{uuid.uuid4().hex[:8]}-"
    paths = [
        f"/api/postbacks/{spot.postback_token}/tracker-postback?clickid="
        f"{click_ids[i % len(click_ids)]}&tracker.event=sale&tracker.cost=5&tracker.tid={prefix}{i}"
        for i in range(total)
    ]
    host, port = base.removeprefix("http://").split(":")
    ids_before = common.received(receiver)["ids"]
    started = time.monotonic()
    statuses, errors, latencies = asyncio.run(call_all(host, int(port), paths, callers))
    answered = time.monotonic() - started
    ok = sum(200 <= s < 300 for s in statuses)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else 0
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0
    common.progress(
        f"  answered {len(statuses)} ({ok} 2xx), {len(errors)} errors, in {answered:.1f} s; "
        "waiting for the deliveries"
    )
    mine = Delivery.objects.filter(conversion__tid__startswith=prefix)
    expected = mine.count()
    delivered, last_print = 0, time.monotonic()
    while time.monotonic() - started < answered + args.deliver_timeout:
        delivered = common.received(receiver)["ids"] - ids_before
        if delivered >= expected:
            break
        if time.monotonic() - last_print >= 5:
            common.progress(f"  {delivered} of {expected} deliveries at the receiver")
            last_print = time.monotonic()
        time.sleep(0.1)
    all_delivered_at = time.monotonic() - started
    # The sender records an attempt just after the receiver answered it.
    recorded = mine.filter(status=Delivery.SUCCESS).count()
    while recorded < expected and time.monotonic() - started < answered + args.deliver_timeout:
        time.sleep(0.2)
        recorded = mine.filter(status=Delivery.SUCCESS).count()
    passed = (
        ok == total
        and not errors
        and expected == total
        and delivered >= expected
        and recorded == total
    )
    return {
        "total": total,
        "callers": callers,
        "answered_s": answered,
        "ok": ok,
        "other": len(statuses) - ok,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "p50": p50,
        "p99": p99,
        "expected": expected,
        "delivered": delivered,
        "recorded": recorded,
        "delivered_s": all_delivered_at if delivered >= expected else None,
        "pass": passed,
    }


# -- printing ----------------------------------------------------------------------


def report(args, title, results, ingest, burst, problems, load_before, load_after):
    print()
    print(
        f"ingest, {title}; wrk {args.connections} connections, {args.seconds} s per run, "
        f"{args.rounds} interleaved rounds, medians"
    )
    rows = []
    for name, runs in results.items():
        errors = sum(r["errors"] + r["non2xx"] for r in runs)
        rows.append(
            [
                name,
                f"{common.median(runs, 'rps'):.1f}",
                f"{common.median(runs, 'p50'):.1f}",
                f"{common.median(runs, 'p99'):.1f}",
                errors,
            ]
        )
    common.table(["path", "req/s", "p50 ms", "p99 ms", "errors"], rows)
    to_one = common.ratio(results, "ingest", "one-query")
    to_trivial = common.ratio(results, "ingest", "trivial")
    p99 = common.median(results["ingest"], "p99")
    ratio_ok = to_one >= TARGET_RATIO
    print()
    common.table(
        ["", "measured", "target", ""],
        [
            ["ingest ÷ one-query", f"{to_one:.2f}", f">= {TARGET_RATIO}", met(ratio_ok)],
            ["ingest ÷ trivial", f"{to_trivial:.2f}", "", ""],
            *common.write_rows(results, "ingest"),
            ["ingest p99", f"{p99:.1f} ms", f"< {TARGET_P99_MS} ms", met(p99 < TARGET_P99_MS)],
        ],
    )
    print(
        f"deliveries due when each ingest run stopped (warm-up first): {ingest.backlogs}; "
        f"all sent after: {', '.join(f'{s:.1f} s' for s in ingest.catch_ups)}"
    )
    if burst:
        print_burst(burst)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    print()
    return {
        "title": title,
        "to_one_query": to_one,
        "to_trivial": to_trivial,
        "write_floor": common.ratio(results, "one-write", "one-query"),
        "p99": p99,
        "burst": burst,
        "problems": problems,
    }


def met(ok):
    return "met" if ok else "NOT MET"


def print_burst(b):
    print()
    print(f"burst: {b['total']} postbacks, {b['callers']} concurrent callers")
    print(
        f"  answered: {b['ok']} 2xx, {b['other']} other, {b['errors']} errors in "
        f"{b['answered_s']:.1f} s ({b['total'] / b['answered_s']:.0f}/s), "
        f"p50 {b['p50']:.0f} ms, p99 {b['p99']:.0f} ms"
    )
    if b["first_error"]:
        print(f"  first error: {b['first_error']}")
    if b["delivered_s"] is not None:
        print(
            f"  delivered: all {b['expected']} at the receiver {b['delivered_s']:.1f} s after "
            f"the start ({b['delivered_s'] - b['answered_s']:.1f} s after the last answer)"
        )
    else:
        print(f"  delivered: only {b['delivered']} of {b['expected']} within the time allowed")
    print(f"  recorded as delivered: {b['recorded']}")
    verdict = "PASS" if b["pass"] else "FAIL"
    print(f"  {verdict}: all answered 2xx, all delivered")


def summary(results):
    print("summary")
    rows = []
    for r in results:
        burst = r["burst"]
        rows.append(
            [
                r["mode"],
                f"{r['to_one_query']:.2f} ({met(r['to_one_query'] >= TARGET_RATIO)})",
                f"{r['write_floor']:.2f}",
                f"{r['p99']:.1f} ({met(r['p99'] < TARGET_P99_MS)})",
                "skipped" if burst is None else ("PASS" if burst["pass"] else "FAIL"),
                len(r["problems"]),
            ]
        )
    common.table(
        [
            "mode",
            f"ingest ÷ one-query (>= {TARGET_RATIO})",
            "one-write ÷ one-query",
            f"ingest p99 ms (< {TARGET_P99_MS})",
            "burst",
            "problems",
        ],
        rows,
    )


if __name__ == "__main__":
    common.main(main)
