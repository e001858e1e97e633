"""Outgoing postbacks delivered per second, against a raw requests loop.

    .venv/bin/python bench/deliver.py [--mode both|postgres|sqlite] [--count 2000]

The reference is the least a sender can do: one `requests.Session` sending
N GETs one after the other to a fast local receiver (bench/receiver.py, a
process of its own). Each path is timed from "N deliveries are written
pending in the database" to "the receiver has seen all N" (by their
distinct X-Delivery-Id, the time of the last one as the receiver noted it),
so it includes the wake, the claims, the reads, the sends and all but the
last batch's records:

- **sqlite**, the embedded mode: a SQLite file, no REDIS_URL, and
  `manage.py deliver` (the embedded loop in a process of its own).
- **postgres**, production as the README runs it: a scratch PostgreSQL
  database, a private redis-server and `manage.py rqworker --with-scheduler`
  (the DeliveryWorker, a SimpleWorker whose delivery loop sends in batches
  on POSTBACKS_SENDER_THREADS threads), with 1 and then 2 workers.

The bench process writes the deliveries itself (a spot with an outgoing
postback to the receiver and a client seeded once, then N conversions of it
and a Delivery of each, pending and due now, in bulk inserts: a conversion's
own events to one target go out one after another) and tells the loops
the way a writer does: `postbacks.loops.queue.look()`, which enqueues one look job
in Redis mode. The embedded loop cannot be told from another process: it
sees the rows at its next poll, every POSTBACKS_EMBEDDED_POLL seconds, which
`--poll` sets (0.05 s here; 1 s by default in the project: the web process
that writes a delivery wakes its own loop at once, so in real use the poll
is no part of the delay). The "first ms" column is that wake: from the
commit to the first request at the receiver.

Scaling: a second receiver answers each request 50 ms late (`--delay`), and
the workers' rate on it is compared for 1 and 2 workers (2 ÷ 1). The ideal
is POSTBACKS_SENDER_THREADS requests in flight per loop, so it is printed
next to it. One look job wakes one worker's loop, which has the others
woken once its claim comes back full; `--looks 2` enqueues two per write,
which wakes both at once (a diagnosis).

"CPU ms" is the CPU time (all threads, from /proc) the sending processes
used per delivery, from the commit to the last record; the raw loop's is
the bench process's own. Each progress line splits it per worker, which
shows which loops sent, and in PostgreSQL mode counts the database sessions
opened meanwhile (pg_stat_database): a worker that forked or connected per
delivery would open about one per delivery; these open none.

Every measurement runs once per round in turn (raw loop, then the paths;
the second worker is started for its measurements and stopped after them),
3 rounds by default after an unrecorded warm-up of each at a quarter of N;
the figures are medians, a ratio is the median of the ratios of each round.
Between measurements it waits until every delivery is recorded as
delivered, so the next one does not share the machine with their records.

Pixels (issue 28): `--pixels` N (10,000) Facebook events, pending and due
now for one pixel (in PostgreSQL mode with 1 worker, the target's row, and
again with 2), sent to a local stand-in of the Graph API's /events edge
(a thread of the bench process that counts the distinct event_id it got
and its requests, and answers as Meta does, {"events_received": n}). Timed
as the others, from the commit to the last event at the stand-in, as events
per second; the row also says how many requests carried them and whether
every event has its attempt row.

Targets (issue 9): delivery >= 0.5 x the raw loop in both modes (the
embedded loop, 1 production worker); 2 workers >= 1.6 x 1 worker against
the 50 ms receiver. Issue 28: the pixels' events per second >= 5 x the raw
loop's requests per second in both modes, in <= 10 requests, every event
with its attempt row.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

TARGET_RATIO = 0.5
TARGET_SCALING = 1.6
TARGET_PIXELS = 5.0  # pixel events/s over the raw loop's requests/s
TARGET_PIXEL_REQUESTS = 10  # for 10,000 events


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=["both", "postgres", "sqlite"], default="both")
    p.add_argument("--count", type=int, default=2000, help="deliveries per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pixels", type=int, default=10_000, help="pixel events per measurement")
    p.add_argument("--delay", type=float, default=50, help="ms, the slow receiver (scaling)")
    p.add_argument(
        "--poll", type=float, default=0.05, help="POSTBACKS_EMBEDDED_POLL, seconds (sqlite)"
    )
    p.add_argument(
        "--looks",
        type=int,
        default=1,
        help="look jobs enqueued per write (postgres); 1 is what a writer does, 2 wakes\n"
        "the loops of both workers (a diagnosis: what the second worker would add)",
    )
    p.add_argument("--timeout", type=float, default=120, help="seconds per measurement at most")
    p.add_argument("--json", help=argparse.SUPPRESS)  # where a mode's child writes its result
    return p.parse_args(argv)


def main():
    common.both_modes_or_one(__file__, parse_args(), measure_mode, summary)


def seed(fast, slow):
    """A spot with an outgoing postback to each receiver and a Facebook pixel
    (its events go to the Graph API's stand-in), and one conversion of an
    attributed client, which every delivery written here belongs to."""
    from crm.models import Client, Conversion
    from postbacks.models import OutgoingPostback
    from tracker.models import Pixel, Spot

    spot = Spot.objects.create(name="Bench spot", slug="bench")
    postbacks = {}
    for name, base in (("fast", fast), ("slow", slow)):
        pb = OutgoingPostback(
            spot=spot,
            name=f"Bench receiver ({name})",
            url=f"{base}/postback?click_id={{click_id}}&sum={{sum}}&tid={{tid}}",
        )
        pb.full_clean()
        pb.save()
        postbacks[name] = pb
    client = Client.objects.create(spot=spot, advert_campaign_id="c1", geo="DE")
    goal = spot.goals.order_by("order").first()
    goal.facebook_event = "Purchase"
    goal.save()
    postbacks["pixel"] = Pixel.objects.create(
        spot=spot, network="facebook", pixel_id="1234567890", access_token="bench-token"
    )
    conversion = Conversion.objects.create(
        spot=spot, client=client, goal=goal, amount=5, tid="bench"
    )
    return conversion, postbacks


class Deliveries:
    """Writes N pending deliveries, tells the loops, and times them at the receiver."""

    def __init__(self, run, conversion, postbacks, receivers, timeout, senders, looks=1):
        self.run, self.conversion, self.postbacks = run, conversion, postbacks
        self.receivers, self.timeout, self.looks = receivers, timeout, looks
        self.senders = senders  # () -> the processes that send: [Popen]

    def conversions(self, count):
        from crm.models import Conversion

        c, batch = self.conversion, uuid.uuid4().hex[:8]
        made = [
            Conversion(spot_id=c.spot_id, client_id=c.client_id, goal_id=c.goal_id, amount=5)
            for _ in range(count)
        ]
        for n, conversion in enumerate(made):
            conversion.tid = f"bench-{batch}-{n}"
        return Conversion.objects.bulk_create(made, batch_size=1000)

    def measure(self, target, count):
        from django.db import transaction
        from django.utils import timezone

        from postbacks.loops import queue
        from postbacks.models import Delivery

        receiver = self.receivers[target]
        common.reset_received(receiver)
        at = timezone.now()
        with transaction.atomic():
            # An event each, of a conversion each, as the endpoint makes them:
            # a conversion's own events to one target go out one after another.
            conversions = self.conversions(count)
            rows = [
                Delivery(
                    conversion=conversion,
                    spot_id=self.conversion.spot_id,
                    postback=self.postbacks[target],
                    status=Delivery.PENDING,
                    next_attempt=at,
                )
                for conversion in conversions
            ]
            Delivery.objects.bulk_create(rows, batch_size=1000)
        senders = self.senders()
        cpu_before = [cpu_seconds(p.pid) for p in senders]
        sessions_before = db_sessions()
        written = time.time()
        queue.look()  # what a writer does once its transaction commits
        if queue.redis_mode():
            for _ in range(self.looks - 1):  # --looks: more jobs, to wake more loops
                queue.get_queue().enqueue("postbacks.loops.jobs.look")
        seen = wait_received(receiver, count, written + self.timeout, self.run)
        recorded = wait_recorded(written + self.timeout, self.run)
        cpu = [cpu_seconds(p.pid) - b for p, b in zip(senders, cpu_before, strict=True)]
        took = seen["last"] - written
        sessions = None if sessions_before is None else db_sessions() - sessions_before
        return {
            "rps": count / took,
            "seconds": took,
            "first_ms": (seen["first"] - written) * 1000,
            "recorded_s": recorded - written,
            "sessions": sessions,
            "cpu_ms": sum(cpu) / count * 1000,
            "cpu_split": cpu,
        }

    def pixels(self, count):
        """`count` events of the pixel due now, timed at the Graph API's stand-in."""
        from django.db import transaction
        from django.utils import timezone

        from postbacks.loops import queue
        from postbacks.models import Delivery, DeliveryAttempt

        graph = self.receivers["graph"]
        graph.reset()
        at = timezone.now()
        with transaction.atomic():
            rows = [
                Delivery(
                    conversion=conversion,
                    spot_id=self.conversion.spot_id,
                    pixel=self.postbacks["pixel"],
                    status=Delivery.PENDING,
                    next_attempt=at,
                    event_time=at,
                )
                for conversion in self.conversions(count)
            ]
            Delivery.objects.bulk_create(rows, batch_size=1000)
        senders = self.senders()
        cpu_before = [cpu_seconds(p.pid) for p in senders]
        written = time.time()
        queue.look()
        seen = graph.wait(count, written + self.timeout, self.run)
        recorded = wait_recorded(written + self.timeout, self.run)
        cpu = [cpu_seconds(p.pid) - b for p, b in zip(senders, cpu_before, strict=True)]
        ids = [d.pk for d in rows]
        logged = sum(
            DeliveryAttempt.objects.filter(delivery_id__in=ids[i : i + 500]).count()
            for i in range(0, len(ids), 500)
        )
        took = seen["last"] - written
        return {
            "rps": count / took,
            "seconds": took,
            "first_ms": (seen["first"] - written) * 1000,
            "recorded_s": recorded - written,
            "sessions": None,
            "cpu_ms": sum(cpu) / count * 1000,
            "cpu_split": cpu,
            "requests": seen["requests"],
            "attempts": logged == count,
        }


class GraphStandIn:
    """The Graph API's /events edge on 127.0.0.1, in a thread of the bench
    process: counts the requests and the distinct event_id of their `data`,
    notes when the first and the last event arrived, and answers as Meta does."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        box = self
        self.lock = threading.Lock()
        self.reset()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                events = json.loads(multipart_fields(body)["data"])
                box.got([e["event_id"] for e in events])
                answer = json.dumps({"events_received": len(events), "messages": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()

    def reset(self):
        with self.lock:
            self.ids, self.requests, self.first, self.last = set(), 0, None, None

    def got(self, ids):
        with self.lock:
            now = time.time()
            self.requests += 1
            self.ids.update(ids)
            self.first = self.first or now
            self.last = now

    def wait(self, count, deadline, run):
        while True:
            with self.lock:
                if len(self.ids) >= count:
                    return {"requests": self.requests, "first": self.first, "last": self.last}
            if time.time() > deadline:
                raise RuntimeError(f"only {len(self.ids)} of {count} pixel events arrived")
            run.check_alive()
            time.sleep(0.01)


def multipart_fields(body):
    """{name: value} of a multipart/form-data body of text fields (the pixel's):
    the reading of what postbacks.delivery.pixels.form_data writes."""
    text = body.decode()
    boundary = text.split("\r\n", 1)[0]
    fields = {}
    for part in text.split(boundary)[1:-1]:
        head, _, value = part.partition("\r\n\r\n")
        name = head.split('name="', 1)[1].split('"', 1)[0]
        fields[name] = value.removesuffix("\r\n")
    return fields


def db_sessions():
    """PostgreSQL: the sessions ever opened on the run's database (its statistics,
    flushed by each backend within about a second); SQLite: None."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def cpu_seconds(pid):
    """CPU time (user + system, all threads) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_received(receiver, count, deadline, run):
    while True:
        seen = common.received(receiver)
        if seen["ids"] >= count:
            return seen
        if time.time() > deadline:
            raise RuntimeError(f"only {seen['ids']} of {count} deliveries arrived in time")
        run.check_alive()
        time.sleep(0.02)


def wait_recorded(deadline, run):
    """When no delivery is pending or being sent any more (all recorded)."""
    from postbacks.models import Delivery

    unfinished = Delivery.objects.filter(status__in=[Delivery.PENDING, Delivery.SENDING])
    while unfinished.exists():
        if time.time() > deadline:
            raise RuntimeError(f"{unfinished.count()} deliveries still unfinished")
        run.check_alive()
        time.sleep(0.05)
    return time.time()


def raw_loop(receiver, count):
    """The reference: one requests.Session sending `count` GETs in turn."""
    import requests

    session = requests.Session()
    session.trust_env = False
    common.reset_received(receiver)
    url = f"{receiver}/postback?click_id=bench&sum=5&tid=bench"
    ids = [str(uuid.uuid4()) for _ in range(count)]
    cpu = time.process_time()
    started = time.time()
    for delivery_id in ids:
        session.get(url, headers={"X-Delivery-Id": delivery_id}, timeout=10).raise_for_status()
    seen = common.received(receiver)
    cpu = time.process_time() - cpu
    session.close()
    took = seen["last"] - started
    return {
        "rps": count / took,
        "seconds": took,
        "first_ms": (seen["first"] - started) * 1000,
        "cpu_ms": cpu / count * 1000,
        "cpu_split": [cpu],
    }


class Workers:
    """The rqworkers of the run, as the README runs them: one always, a second
    started for the 2-worker measurements and stopped after them."""

    def __init__(self, run, env):
        self.run, self.env, self.second = run, env, None
        self.first = self.start("rqworker-1")

    def running(self):
        return [p for p in (self.first, self.second) if p is not None]

    def start(self, name):
        args = [sys.executable, "manage.py", "rqworker", "--with-scheduler"]
        return self.run.start(name, args, self.env)

    def count(self):
        from rq import Worker

        from postbacks.loops import queue

        return Worker.count(connection=queue.get_queue().connection)

    def wait(self, n):
        common.wait_for(f"{n} rq workers", lambda: self.count() == n, timeout=60)

    def two(self):
        self.second = self.start("rqworker-2")
        self.wait(2)

    def one(self):
        started = time.monotonic()
        if self.second is not None:
            self.run.stop_one(self.second)
            self.second = None
        self.wait(1)
        common.progress(f"  second worker stopped in {time.monotonic() - started:.1f} s")


def measure_mode(args):
    n = args.count
    load_before = common.loadavg()
    common.progress(f"deliver, mode {args.mode}, {n} deliveries; load average {load_before}")
    with common.Run(f"deliver-{args.mode}") as run:
        receivers = {
            "fast": common.receiver(run),
            "slow": common.receiver(run, args.delay, name="receiver-slow"),
            "graph": GraphStandIn(),
        }
        if args.mode == "postgres":
            database = common.postgres_db(run, f"bench_deliver_{os.getpid()}")
            env = common.app_env(database, common.redis_server(run))
        else:
            env = common.app_env(common.sqlite_db(run))
            env["POSTBACKS_EMBEDDED_POLL"] = str(args.poll)
        env["FACEBOOK_API_URL"] = receivers["graph"].url  # the pixel's events go there
        common.progress("migrating a scratch database")
        common.migrate(env)
        common.setup_django(env)
        from django.conf import settings

        threads = settings.POSTBACKS_SENDER_THREADS
        conversion, postbacks = seed(receivers["fast"], receivers["slow"])
        if args.mode == "postgres":
            workers = Workers(run, env)
            workers.wait(1)
            senders = workers.running  # the processes that send, for their CPU time
            names = ["raw loop", "1 worker", "1 worker, slow", "pixels"]
            names += ["2 workers", "pixels, 2 workers", "2 workers, slow"]
            before = {"2 workers": workers.two}
            after = {"2 workers, slow": workers.one}
        else:
            loop = run.start("deliver", [sys.executable, "manage.py", "deliver"], env)
            senders = lambda: [loop]  # noqa: E731
            names = ["raw loop", "embedded", "embedded, slow", "pixels"]
            before = after = {}
        deliveries = Deliveries(
            run, conversion, postbacks, receivers, args.timeout, senders, args.looks
        )

        def path(target, size):
            return lambda: deliveries.measure(target, size)

        def raw(size):
            return lambda: raw_loop(receivers["fast"], size)

        def measure(name, size, pixels):
            if name == "raw loop":
                return raw(size)
            if name.startswith("pixels"):
                return lambda: deliveries.pixels(pixels)
            return path("slow" if name.endswith("slow") else "fast", size)

        def measures(size, pixels):
            return {name: measure(name, size, pixels) for name in names}

        warmups = measures(max(1, n // 4), max(1, args.pixels // 4))
        results = rounds(measures(n, args.pixels), warmups, args.rounds, before, after)
        run.check_alive()
        common.close_database()
    load_after = common.loadavg()
    result = report(args, results, threads, load_before, load_after)
    result["mode"] = args.mode
    return result


def rounds(measures, warmups, count, before, after):
    """Each measurement once per round in turn, after an unrecorded warm-up of
    each; `before`/`after` run around a measurement (start/stop a worker)."""
    results = {name: [] for name in measures}
    for r in range(count + 1):
        for name, measure in (warmups if r == 0 else measures).items():
            if name in before:
                before[name]()
            result = measure()
            if name in after:
                after[name]()
            label = "warm-up" if r == 0 else f"round {r}/{count}"
            split = " + ".join(f"{c:.2f}" for c in result["cpu_split"]) + " s"
            if result.get("sessions") is not None:
                split += f"; {result['sessions']} new DB sessions"
            common.progress(
                f"{label} {name:16s} {result['rps']:8.1f} deliveries/s  "
                f"{result['seconds']:6.2f} s  first {result['first_ms']:6.1f} ms  "
                f"CPU {result['cpu_ms']:.2f} ms/delivery ({split})  load {common.loadavg()}"
            )
            if r:
                results[name].append(result)
    return results


# -- printing ----------------------------------------------------------------------


def met(ok):
    return "met" if ok else "NOT MET"


def loops(name):
    """The delivery loops a path runs: one per worker."""
    return 2 if "2 workers" in name else 1


def report(args, results, threads, load_before, load_after):
    ideal = threads / (args.delay / 1000)
    if args.mode == "postgres":
        title = "PostgreSQL + Redis, manage.py rqworker --with-scheduler (1, then 2)"
        if args.looks != 1:
            title += f", {args.looks} look jobs per write"
        main_path = "1 worker"
    else:
        title = f"embedded: SQLite, no Redis, manage.py deliver (poll {args.poll:g} s)"
        main_path = "embedded"
    print()
    print(
        f"deliver, {title}; {args.count} deliveries per run, {args.rounds} interleaved "
        f"rounds, medians; slow receiver {args.delay:g} ms, {threads} sender threads per loop"
    )
    rows = []
    ratios = {}
    for name, runs in results.items():
        slow = name.endswith("slow")
        ratio = "" if slow else common.ratio(results, name, "raw loop")
        ratios[name] = ratio
        target = ""
        verdict = ""
        if name == main_path or (name == "2 workers" and args.mode == "postgres"):
            target = f">= {TARGET_RATIO}"
            verdict = met(ratio >= TARGET_RATIO)
        if name == "pixels":
            target = f">= {TARGET_PIXELS}"
            verdict = met(ratio >= TARGET_PIXELS)
        rows.append(
            [
                name,
                f"{common.median(runs, 'rps'):.0f}",
                f"{common.median(runs, 'seconds'):.2f}",
                f"{common.median(runs, 'first_ms'):.0f}",
                f"{common.median(runs, 'cpu_ms'):.2f}",
                "" if slow else f"{ratio:.2f}",
                f"{common.median(runs, 'rps') / (ideal * loops(name)):.2f}" if slow else "",
                target,
                verdict,
            ]
        )
    scaling = None
    if args.mode == "postgres":
        scaling = common.ratio(results, "2 workers, slow", "1 worker, slow")
        fast_scaling = common.ratio(results, "2 workers", "1 worker")
        rows.append(["2 ÷ 1 workers, slow", "", "", "", "", f"{scaling:.2f}", ""])
        rows[-1] += [f">= {TARGET_SCALING}", met(scaling >= TARGET_SCALING)]
        rows.append(["2 ÷ 1 workers, fast", "", "", "", "", f"{fast_scaling:.2f}", "", "", ""])
    headers = ["path", "deliveries/s", "s", "first ms", "CPU ms", "ratio", "÷ ideal", "target"]
    common.table([*headers, ""], rows)
    print(
        "ratio: ÷ the raw loop (the 2 ÷ 1 rows: 2 workers ÷ 1 worker); "
        f"÷ ideal: ÷ {ideal:.0f}/s per loop ({threads} requests in flight of {args.delay:g} ms "
        "each); "
        "first ms: from the commit to the first request at the receiver; CPU ms: CPU time "
        "of the sending processes (the raw loop's: the bench's) per delivery"
    )
    recorded = [
        r["recorded_s"] - r["seconds"]
        for name in results
        for r in results[name]
        if "recorded_s" in r
    ]
    sessions = [r["sessions"] for runs in results.values() for r in runs if r.get("sessions")]
    if args.mode == "postgres":
        print(
            "new database sessions opened while the workers delivered (pg_stat_database): "
            f"{sum(sessions)} in all {sum(len(runs) for runs in results.values()) - args.rounds} "
            "measurements"
        )
    if recorded:
        print(
            f"all recorded as delivered, after the last arrival: median "
            f"{statistics.median(recorded) * 1000:.0f} ms"
        )
    pixel_runs = results.get("pixels", [])
    requests = max((r["requests"] for r in pixel_runs), default=None)
    attempts = all(r["attempts"] for r in pixel_runs)
    if pixel_runs:
        allowed = TARGET_PIXEL_REQUESTS * args.pixels / 10_000
        print(
            f"pixels: {args.pixels} Facebook events in {requests} requests at most per run "
            f"(<= {allowed:g}: {met(requests <= allowed)}); every event with its attempt "
            f"row: {'yes' if attempts else 'NO'}"
        )
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    print()
    return {
        "title": title,
        "ratio": ratios[main_path],
        "ratio_2": ratios.get("2 workers"),
        "scaling": scaling,
        "pixels": ratios.get("pixels"),
        "pixels_2": ratios.get("pixels, 2 workers"),
        "pixel_requests": requests,
        "attempts": attempts,
    }


def summary(results):
    print("summary")
    rows = []
    for r in results:
        rows.append(
            [
                r["mode"],
                f"{r['ratio']:.2f} ({met(r['ratio'] >= TARGET_RATIO)})",
                "" if r["ratio_2"] is None else f"{r['ratio_2']:.2f}",
                ""
                if r["scaling"] is None
                else f"{r['scaling']:.2f} ({met(r['scaling'] >= TARGET_SCALING)})",
                f"{r['pixels']:.2f} ({met(r['pixels'] >= TARGET_PIXELS)}), "
                + ("" if r.get("pixels_2") is None else f"2 workers {r['pixels_2']:.2f}, ")
                + f"{r['pixel_requests']} requests, "
                + f"attempts {'all' if r['attempts'] else 'MISSING'}",
            ]
        )
    common.table(
        [
            "mode",
            f"delivery ÷ raw loop (>= {TARGET_RATIO})",
            "2 workers ÷ raw loop",
            f"2 ÷ 1 workers, slow (>= {TARGET_SCALING})",
            f"pixel events ÷ raw loop (>= {TARGET_PIXELS})",
        ],
        rows,
    )


if __name__ == "__main__":
    common.main(main)
