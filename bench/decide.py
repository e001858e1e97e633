"""Queued incoming postbacks decided per second by the workers, against the
endpoint that decides before it answers, measured in the same run.

    .venv/bin/python bench/decide.py [--mode both|postgres|sqlite] [--profile]

For each mode (PostgreSQL + Redis with RQ workers, as in production; and the
embedded default, a SQLite file and no Redis):

1. The reference, by HTTP: gunicorn as the README runs it (and the RQ
   workers in PostgreSQL mode) and wrk, 16 connections, on a spot with
   answer_after_processing (each request decided, then answered), every
   request a new conversion of one of 10,000 seeded clients with one
   outgoing postback to a local receiver, in interleaved rounds with the
   one-write view (/bench/one-write) for scale. After each run the script
   waits until the loops have sent its deliveries.
2. gunicorn and the RQ workers are stopped: their loops would decide the
   backlog too.
3. A backlog: a fresh spot with one outgoing postback to the receiver,
   1,000 clients and 10,000 IncomingPostback rows inserted in one bulk
   insert as the endpoint queues them (status queued, the spot, its token,
   the click ids of the clients in turn, GET with
   clickid=<id>&tracker.event=sale&tracker.cost=5&tracker.tid=<unique>).
   Then 1 decider process, and on a backlog seeded again the same way 2,
   each a process of this script (--decider) with Django set up on the
   run's database and settings, calling postbacks.loops.intake.decide()
   (what each loop calls on each pass: the clicks' settling, then a batch
   of INCOMING_BATCH queued rows) until no queued row is left. They set
   Django up and connect first, then all start at one signal; the time is
   from that signal to the end of the last, as decided rows per second.
   The deliveries the decisions make stay pending (no loop sends them).

Targets (issue 26): 1 worker's decided rows/s >= 3 x the
answer-after-processing req/s of the same run; 2 workers ÷ 1 >= 1.6.
--profile decides one more backlog with a single decider under cProfile
(not timed: the profiler slows it) and prints the project's functions by
cumulative time and the costliest functions by their own time.
"""

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, ingest  # noqa: E402

TARGET_ONE = 3.0  # 1 worker's decided rows/s ÷ the answer-after-processing req/s
TARGET_SCALING = 1.6  # 2 workers ÷ 1

# The requests: ingest.py's (each a new conversion of a seeded client).
LUA = ingest.LUA


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=["both", "postgres", "sqlite"], default="both")
    p.add_argument("--rows", type=int, default=10_000, help="queued postbacks per backlog")
    p.add_argument("--clients", type=int, default=1_000, help="clients of a backlog")
    p.add_argument("--http-clients", type=int, default=10_000, help="clients of the HTTP spot")
    p.add_argument("--seconds", type=int, default=8, help="wrk duration per measurement")
    p.add_argument("--warmup", type=int, default=2, help="unrecorded wrk run per path first")
    p.add_argument("--rounds", type=int, default=3, help="wrk rounds")
    p.add_argument("--decide-rounds", type=int, default=1, help="rounds of 1 then 2 deciders")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="rqworkers of the HTTP reference")
    p.add_argument("--timeout", type=int, default=300, help="seconds a backlog may take")
    p.add_argument("--profile", action="store_true", help="cProfile the single decider")
    p.add_argument("--json", help=argparse.SUPPRESS)  # where a mode's child writes its result
    # A decider process: --decider FOLDER INDEX (started by the script itself).
    p.add_argument("--decider", nargs=2, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main():
    args = parse_args()
    if args.decider:
        decider(Path(args.decider[0]), int(args.decider[1]), args.profile)
        return
    common.both_modes_or_one(__file__, args, measure_mode, summary)


# -- seeding -----------------------------------------------------------------------


def seed_spot(receiver, clients, slug, after=False):
    """ingest.py's spot: one outgoing postback to the receiver, attributed clients."""
    return ingest.seed_spot(receiver, clients, slug, after)


def seed_backlog(receiver, args, n):
    """A fresh spot, its clients and `args.rows` queued postbacks for them, as
    the endpoint stores them (process.enqueue)."""
    from postbacks.models import IncomingPostback

    spot, click_ids = seed_spot(receiver, args.clients, f"backlog-{n}")
    token = str(spot.postback_token)
    path = f"/api/postbacks/{token}/tracker-postback"
    prefix = uuid.uuid4().hex[:8]
    rows = (
        IncomingPostback(
            token=token,
            spot=spot,
            status=IncomingPostback.QUEUED,
            http_status=200,
            method="GET",
            path=path,
            query=f"clickid={click_id}&tracker.event=sale&tracker.cost=5&tracker.tid={prefix}-{i}",
            click_id=click_id,
            remote_addr="127.0.0.1",
        )
        for i, click_id in ((i, click_ids[i % len(click_ids)]) for i in range(args.rows))
    )
    IncomingPostback.objects.bulk_create(rows, batch_size=2000)
    common.analyze()
    return spot


# -- the reference, by HTTP ----------------------------------------------------------


def measure_http(run, base, receiver, args):
    """{"after": [...], "one-write": [...]}: wrk rounds, waiting after each
    postback run until the loops have sent its deliveries."""
    spot, click_ids = seed_spot(receiver, args.http_clients, "after", after=True)
    common.analyze()
    clicks_file = run.dir / "click_ids.txt"
    clicks_file.write_text("\n".join(click_ids) + "\n")
    script = common.lua_script(run, "after", LUA)
    url = f"{base}/api/postbacks/{spot.postback_token}/tracker-postback"
    sent = [0]

    def after(seconds):
        script_args = [uuid.uuid4().hex[:8], str(clicks_file), str(sent[0])]
        result = common.wrk(url, seconds, args.connections, script, script_args)
        sent[0] += result["requests"]
        due, took, left = common.drain(common.due_deliveries, args.timeout)
        common.progress(f"  {due} deliveries due when wrk stopped; all sent {took:.1f} s later")
        run.check_alive()
        return result

    def one_write(seconds):
        return common.wrk(f"{base}/bench/one-write", seconds, args.connections)

    measures = {"after": lambda: after(args.seconds), "one-write": lambda: one_write(args.seconds)}
    warmups = {"after": lambda: after(args.warmup), "one-write": lambda: one_write(args.warmup)}
    return common.interleaved(measures, args.rounds, warmup=lambda name: warmups[name]())


# -- the deciders ------------------------------------------------------------------


def decider(folder, index, profile):
    """A decider process: set up, say ready, wait for the go, decide until no
    queued row is left, write what it did."""
    import django

    django.setup()
    from django.db import connection

    from postbacks.loops import intake

    connection.ensure_connection()
    common.queued_postbacks()  # the query's code loaded, the connection used
    (folder / f"ready-{index}").touch()
    go = folder / "go"
    while not go.exists():
        time.sleep(0.001)
    profiler = cProfile.Profile() if profile else None
    started, cpu = time.time(), time.process_time()
    if profiler:
        profiler.enable()
    taken = 0
    while True:
        n = intake.decide()
        taken += n
        # Nothing claimable is not nothing left: the other decider may hold
        # the rows before this one's next rows of the same clients.
        if not n and not common.queued_postbacks():
            break
        if not n:
            time.sleep(0.005)
    if profiler:
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        # The project's functions by cumulative time (where the time goes),
        # then every function by its own time (what costs at the bottom).
        stats.sort_stats("cumulative").print_stats(r"/(crm|postbacks|tracker)/", 30)
        stats.sort_stats("tottime").print_stats(15)
        (folder / f"profile-{index}.txt").write_text(out.getvalue())
    result = {
        "taken": taken,
        "started": started,
        "ended": time.time(),
        "cpu": time.process_time() - cpu,
    }
    (folder / f"result-{index}.json").write_text(json.dumps(result))


def run_deciders(run, count, args, profile):
    """Start `count` deciders, give the go when all are ready: {"seconds",
    "rows_per_s", "cpu": [s each], "taken": [rows each]}."""
    folder = run.dir / f"deciders-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    procs = []
    for i in range(1, count + 1):
        cmd = [sys.executable, __file__, "--decider", str(folder), str(i)]
        if profile:
            cmd.append("--profile")
        procs.append(run.start(f"decider-{i}", cmd, run.env))
    ready = [folder / f"ready-{i}" for i in range(1, count + 1)]
    common.wait_for("the deciders", lambda: all(r.exists() for r in ready), timeout=60)
    go = time.time()
    (folder / "go").touch()
    end = time.monotonic() + args.timeout
    for proc in procs:
        try:
            proc.wait(max(1, end - time.monotonic()))
        except Exception as e:
            raise RuntimeError(f"a decider was not done after {args.timeout} s") from e
        if proc.returncode:
            raise RuntimeError(f"a decider exited with {proc.returncode}; see {run.dir}")
        run.stop_one(proc)  # gone: no longer one of the run's processes
    results = [json.loads((folder / f"result-{i}.json").read_text()) for i in range(1, count + 1)]
    seconds = max(r["ended"] for r in results) - go
    profiles = [p.read_text() for p in sorted(folder.glob("profile-*.txt"))]
    return {
        "seconds": seconds,
        "rows_per_s": sum(r["taken"] for r in results) / seconds,
        "cpu": [r["cpu"] for r in results],
        "taken": [r["taken"] for r in results],
        "profiles": profiles,
    }


def measure_backlog(run, receiver, args, count, n, profile=False):
    """Seed a backlog, decide it with `count` deciders, check the outcomes."""
    from postbacks.models import IncomingPostback

    spot = seed_backlog(receiver, args, n)
    common.progress(f"backlog {n}: {args.rows} queued postbacks of {args.clients} clients")
    result = run_deciders(run, count, args, profile)
    rows = IncomingPostback.objects.filter(spot=spot)
    result["accepted"] = rows.filter(status=IncomingPostback.ACCEPTED).count()
    result["queued"] = rows.filter(status=IncomingPostback.QUEUED).count()
    first_other = rows.exclude(status=IncomingPostback.ACCEPTED).order_by("id").first()
    result["first_other"] = (
        f"{first_other.status} {first_other.http_status} {first_other.error[:200]!r}"
        if first_other
        else ""
    )
    cpu = sum(result["cpu"]) / max(1, sum(result["taken"])) * 1000
    result["cpu_ms_per_row"] = cpu
    common.progress(
        f"  {count} decider(s): {sum(result['taken'])} rows in {result['seconds']:.2f} s, "
        f"{result['rows_per_s']:.0f} rows/s, rows each {result['taken']}, CPU ms/row {cpu:.2f}, "
        f"accepted {result['accepted']}, load {common.loadavg()}"
    )
    return result


# -- a mode ------------------------------------------------------------------------


def measure_mode(args):
    title = common.mode_title(args.mode, args.workers)
    load_before = common.loadavg()
    common.progress(f"decide, {title}; load average {load_before}")
    with common.Run(f"decide-{args.mode}") as run:
        receiver = common.receiver(run)
        db_name = f"hbench_decide_{uuid.uuid4().hex[:8]}"
        base = common.start_app(run, args.mode, "decide", args.workers, db_name=db_name)
        http = measure_http(run, base, receiver, args)
        run.check_alive()
        for proc in common.app_procs(run):
            run.stop_one(proc)  # their loops would decide the backlogs too
        common.progress("gunicorn and the RQ workers stopped; the deciders alone decide")
        rounds = []
        for r in range(args.decide_rounds):
            rounds.append(
                {
                    count: measure_backlog(run, receiver, args, count, f"{r}-{count}")
                    for count in (1, 2)
                }
            )
        profiles = []
        if args.profile:  # a backlog of its own: cProfile slows what it profiles
            profiles = measure_backlog(run, receiver, args, 1, "profiled", profile=True)["profiles"]
        common.close_database()
    load_after = common.loadavg()
    result = report(args, title, http, rounds, profiles, load_before, load_after)
    result["mode"] = args.mode
    return result


# -- printing ----------------------------------------------------------------------


def met(ok):
    return "met" if ok else "NOT MET"


def report(args, title, http, rounds, profiles, load_before, load_after):
    from django.conf import settings

    after_rps = common.median(http["after"], "rps")
    one = statistics.median([r[1]["rows_per_s"] for r in rounds])
    two = statistics.median([r[2]["rows_per_s"] for r in rounds])
    to_after = one / after_rps
    scaling = statistics.median([r[2]["rows_per_s"] / r[1]["rows_per_s"] for r in rounds])
    print()
    print(
        f"decide, {title}; backlog {args.rows} queued postbacks of {args.clients} clients, "
        f"INCOMING_BATCH {settings.INCOMING_BATCH}; HTTP: wrk {args.connections} connections, "
        f"{args.seconds} s per run, {args.rounds} rounds, medians"
    )
    rows = []
    for name, runs in http.items():
        rps, p50, p99 = (common.median(runs, k) for k in ("rps", "p50", "p99"))
        errors = sum(r["errors"] + r["non2xx"] for r in runs)
        rows.append(
            [f"{name} (HTTP)", f"{rps:.1f}", "", "", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", errors]
        )
    for count in (1, 2):
        for r in rounds:
            m = r[count]
            not_ok = args.rows - m["accepted"]
            rows.append(
                [
                    f"{count} decider{'s' if count > 1 else ''}",
                    f"{m['rows_per_s']:.1f}",
                    f"{m['seconds']:.2f}",
                    f"{m['cpu_ms_per_row']:.2f}",
                    f"rows each {m['taken']}",
                    not_ok,
                ]
            )
    common.table(["path", "req/s or rows/s", "s", "CPU ms/row", "", "not accepted"], rows)
    print()
    common.table(
        ["", "measured", "target", ""],
        [
            [
                "1 decider ÷ after (HTTP)",
                f"{to_after:.2f}",
                f">= {TARGET_ONE}",
                met(to_after >= TARGET_ONE),
            ],
            [
                "2 deciders ÷ 1",
                f"{scaling:.2f}",
                f">= {TARGET_SCALING}",
                met(scaling >= TARGET_SCALING),
            ],
            [
                "1 decider ÷ one-write (HTTP)",
                f"{one / common.median(http['one-write'], 'rps'):.2f}",
                "",
                "",
            ],
        ],
    )
    problems = []
    for r in rounds:
        for count, m in r.items():
            if m["accepted"] != args.rows:
                problems.append(
                    f"{count} decider(s): {m['accepted']} of {args.rows} accepted, {m['queued']} "
                    f"still queued (first other: {m['first_other']})"
                )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    for profile in profiles:
        print()
        print("cProfile of a single decider on a backlog of its own (not timed):")
        print(profile)
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    print()
    return {
        "title": title,
        "after_rps": after_rps,
        "one": one,
        "two": two,
        "to_after": to_after,
        "scaling": scaling,
        "problems": problems,
    }


def summary(results):
    print("summary")
    common.table(
        [
            "mode",
            "after req/s",
            "1 decider rows/s",
            "2 deciders rows/s",
            f"1 ÷ after (>= {TARGET_ONE})",
            f"2 ÷ 1 (>= {TARGET_SCALING})",
            "problems",
        ],
        [
            [
                r["mode"],
                f"{r['after_rps']:.0f}",
                f"{r['one']:.0f}",
                f"{r['two']:.0f}",
                f"{r['to_after']:.2f} ({met(r['to_after'] >= TARGET_ONE)})",
                f"{r['scaling']:.2f} ({met(r['scaling'] >= TARGET_SCALING)})",
                len(r["problems"]),
            ]
            for r in results
        ],
    )


if __name__ == "__main__":
    common.main(main)
