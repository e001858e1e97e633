"""What the bench scripts share: scratch databases, the processes they start
(redis-server, gunicorn, rqworker, a receiver), wrk runs, medians and tables.

Everything a script starts belongs to a `Run` and is stopped when the run
ends, by an error, SIGTERM or Ctrl-C too. Each process gets its own process
group, so stopping it stops its children as well (gunicorn's workers), and a
Ctrl-C in the terminal reaches only the script, which then stops them in
order.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's bin: gunicorn sits beside python
# A PostgreSQL server where the bench may create and drop its own databases.
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
# The token of the rows the one-write reference view stores (bench/urls.py);
# the scripts leave them out of their checks.
ONE_WRITE_TOKEN = "bench-one-write"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def progress(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def loadavg():
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def http_get(url, timeout=5):
    # No proxy from the environment: everything the bench talks to is on 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.read().decode()


def wait_for(what, check, timeout=60, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see its log")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready after {timeout} s")


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


class Run:
    """The processes, scratch databases and files of one bench run."""

    def __init__(self, name):
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.procs = []  # (name, Popen), stopped last first
        self.cleanups = []  # callables run after the processes are stopped, last first
        self.env = None  # the application's environment, once start_app made it

    def __enter__(self):
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self

    def __exit__(self, kind, value, tb):
        # A second Ctrl-C must not cut the cleanup short and leave servers behind.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            self.stop()
        finally:
            signal.signal(signal.SIGINT, old)
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        if kind is None or issubclass(kind, KeyboardInterrupt | SystemExit):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:  # an error: its logs say why
            print(f"Logs of the processes are kept in {self.dir}", file=sys.stderr)

    def start(self, name, args, env=None):
        with open(self.dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                args,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def stop_one(self, proc):
        """Stop one of the run's processes before the run ends."""
        stop_group(proc)
        self.procs = [(name, p) for name, p in self.procs if p is not proc]

    def check_alive(self):
        """A measurement of a dead worker means nothing: stop at once."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.dir}")

    def stop(self):
        for _name, proc in reversed(self.procs):
            stop_group(proc)
        self.procs = []
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as e:
                print(f"Cleanup {cleanup.__name__} failed: {e}", file=sys.stderr)
        self.cleanups = []


def stop_group(proc, wait=15):
    """SIGTERM to the process's group (a warm shutdown), SIGKILL if it lingers.
    The group is signalled only while its leader is not reaped yet, so its id
    cannot belong to anyone else."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- databases and the application's environment -------------------------------


def postgres_db(run, name):
    """A new, empty PostgreSQL database, dropped when the run ends."""
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop_database():
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    run.cleanups.append(drop_database)
    return f"{POSTGRES}/{name}"


def sqlite_db(run):
    """A SQLite file in the run's folder (removed with it)."""
    return f"sqlite:///{run.dir / 'bench.sqlite3'}"


def app_env(database_url, redis_url=""):
    """The environment of every application process: production settings
    (DEBUG off), the bench's URLs, and the receiver on loopback allowed."""
    env = dict(os.environ)
    env.pop("GUNICORN_CMD_ARGS", None)  # gunicorn runs as gunicorn.conf.py says
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(40),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,  # empty: the embedded mode
        POSTBACKS_ALLOWED_NETWORKS="127.0.0.1/32",
    )
    return env


def migrate(env):
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )


def setup_django(env):
    """Use the application's models in this process, on the run's database."""
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def analyze():
    """Give the query planner statistics of the seeded tables, as a running
    installation has them (autovacuum would, minutes later): without them
    PostgreSQL guesses one row per table and picks plans that scan."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# -- the processes ---------------------------------------------------------------


def redis_server(run):
    """A private redis-server on a free port, keeping nothing on disk."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(run.dir)]
    proc = run.start("redis", args)

    def pong():
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    wait_for("redis-server", pong, proc=proc)
    return f"redis://127.0.0.1:{port}/0"


def gunicorn(run, env, workers=2):
    """`gunicorn tracker.wsgi` run from the repository folder, as the README
    runs it (so it reads gunicorn.conf.py), serving the bench's settings."""
    port = free_port()
    env = dict(env, WEB_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(workers))
    proc = run.start("gunicorn", [str(BIN / "gunicorn"), "tracker.wsgi"], env)
    base = f"http://127.0.0.1:{port}"
    wait_for("gunicorn", lambda: http_get(f"{base}/bench/ok") == "ok", proc=proc)
    return base


def rqworkers(run, env, count):
    """Delivery workers, as the README runs them."""
    for i in range(count):
        args = [sys.executable, "manage.py", "rqworker", "--with-scheduler"]
        run.start(f"rqworker-{i + 1}", args, env)


def receiver(run, delay_ms=0, name="receiver"):
    """bench/receiver.py on a free port, answering after `delay_ms`: its base URL."""
    port = free_port()
    args = [sys.executable, str(REPO / "bench" / "receiver.py"), str(port)]
    if delay_ms:
        args += ["--delay", str(delay_ms)]
    proc = run.start(name, args)
    base = f"http://127.0.0.1:{port}"
    wait_for("receiver", lambda: received(base), proc=proc)
    return base


def received(receiver_url):
    """{"requests": n, "ids": distinct delivery ids, "first", "last": arrival
    times (time.time(), None before any)} the receiver has seen."""
    return json.loads(http_get(f"{receiver_url}/__count"))


def reset_received(receiver_url):
    """Set the receiver's counts and times back to zero."""
    return json.loads(http_get(f"{receiver_url}/__reset"))


def start_app(run, mode, name, rq_workers=2, db_name=None):
    """The application in `mode` on a scratch database: its base URL.

    postgres: PostgreSQL + a private Redis, gunicorn and rqworkers, as in
    production. sqlite: the embedded default, a SQLite file and no Redis;
    gunicorn's workers deliver the postbacks themselves. The PostgreSQL
    database is `db_name`, or bench_<name>_<pid>; run.env is the
    application's environment (for processes a script starts itself).
    """
    if mode == "postgres":
        database = db_name or f"bench_{name}_{os.getpid()}"
        env = app_env(postgres_db(run, database), redis_server(run))
    else:
        env = app_env(sqlite_db(run))
    run.env = env
    progress("migrating a scratch database")
    migrate(env)
    setup_django(env)
    base = gunicorn(run, env)
    if mode == "postgres":
        rqworkers(run, env, rq_workers)
    return base


def worker_procs(run):
    """The rqworkers: in PostgreSQL mode the only processes that decide and deliver."""
    return [proc for name, proc in run.procs if name.startswith("rqworker")]


@contextlib.contextmanager
def stopped(procs):
    """`procs` stopped (SIGSTOP to each group) meanwhile and continued after:
    the web alone on the machine, as when the workers have cores of their own.
    What arrives meanwhile waits queued, as it would for a busy worker."""
    for proc in procs:
        os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGCONT)


def app_procs(run):
    """The run's application processes (gunicorn, rqworkers): stopping them
    stops every loop that decides and delivers."""
    return [proc for name, proc in run.procs if name == "gunicorn" or name.startswith("rqworker")]


# -- what the loops still have to do (Django set up) ----------------------------------


def queued_postbacks(**filters):
    """Incoming postbacks stored queued and not decided yet."""
    from postbacks.models import IncomingPostback

    return IncomingPostback.objects.filter(status=IncomingPostback.QUEUED, **filters).count()


def unsettled_clients():
    """Clients a click inserted that the loops have not settled yet."""
    from crm.models import Client

    return Client.objects.filter(settled=False).count()


def due_deliveries():
    """Deliveries due now or being sent; a failed attempt waits for its retry
    (minutes) and does not count."""
    from django.db.models import Q
    from django.utils import timezone

    from postbacks.models import Delivery

    due = Q(status=Delivery.PENDING, next_attempt__lte=timezone.now())
    return Delivery.objects.filter(due | Q(status=Delivery.SENDING)).count()


def drain(count, timeout, every=0.2):
    """Wait until `count()` is 0: (its value at the start, seconds waited, its
    value at the end: 0 unless `timeout` seconds passed)."""
    started = time.monotonic()
    first = left = count()
    while left and time.monotonic() - started < timeout:
        time.sleep(every)
        left = count()
    return first, time.monotonic() - started, left


def percentile(values, p):
    """The p-th percentile (0-100) of `values`, nearest rank; 0 when empty."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def mode_title(mode, rq_workers=2):
    if mode == "postgres":
        return f"PostgreSQL + Redis, 2 web workers, {rq_workers} rq workers"
    return "embedded: SQLite, no Redis, 2 web workers that also deliver"


def close_database():
    """Close this process's connections before its scratch database is dropped."""
    from django.db import connections

    connections.close_all()


# -- wrk ---------------------------------------------------------------------------


def lua_script(run, name, text):
    path = run.dir / f"{name}.lua"
    path.write_text(text)
    return str(path)


def wrk(url, seconds, connections, script=None, script_args=()):
    """One wrk run: {"rps", "p50", "p99" (ms), "requests", "errors", "non2xx"}.

    One wrk thread: it needs far less than a core at these rates, and every
    core it does not use serves the application. --timeout 30s (gunicorn's
    worker timeout): with wrk's 2 s default a slow request would be dropped
    from the latencies instead of counted in p99.
    """
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    if script:
        args += ["-s", script]
    args.append(url)
    if script_args:
        args += ["--", *script_args]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(text):
    percentiles = {
        int(p): float(v) * UNITS_MS[unit]
        for p, v, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    }
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
        text,
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50": percentiles[50],
        "p99": percentiles[99],
        "requests": int(re.search(r"(\d+) requests in", text).group(1)),
        "errors": sum(map(int, sockets.groups())) if sockets else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


# -- rounds, medians and tables ------------------------------------------------------


def interleaved(measures, rounds, warmup=None):
    """Run each measurement once per round, in turn (A, B, C, A, B, C, ...), so a
    change in the machine's load hits all of them alike: {name: [result, ...]}.
    `warmup(name)` runs first for each, unrecorded."""
    if warmup:
        for name in measures:
            progress(f"warm-up {name}")
            warmup(name)
    results = {name: [] for name in measures}
    for r in range(1, rounds + 1):
        for name, measure in measures.items():
            result = measure()
            results[name].append(result)
            progress(
                f"round {r}/{rounds} {name:10s} {result['rps']:8.1f} req/s  "
                f"p50 {result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms  "
                f"errors {result['errors'] + result['non2xx']}  load {loadavg()}"
            )
    return results


def median(results, key):
    return statistics.median(r[key] for r in results)


def ratio(results, of, to):
    """Median over rounds of of's req/s ÷ to's, each taken in the same round."""
    pairs = zip(results[of], results[to], strict=True)
    return statistics.median(a["rps"] / b["rps"] for a, b in pairs)


def write_rows(results, path):
    """The lines that put `path` beside a durable write: its ratio to the
    one-write view, and that view's ratio to the one-query view, which is
    the most any path that commits what it was sent before answering can
    reach against the one-query view."""
    floor = ratio(results, "one-write", "one-query")
    return [
        [f"{path} ÷ one-write", f"{ratio(results, path, 'one-write'):.2f}", "", ""],
        ["one-write ÷ one-query", f"{floor:.2f}", "", "(the most a durable write reaches)"],
    ]


def table(headers, rows):
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        # The first column (names) left-aligned, the figures right-aligned.
        line = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(line))
        if n == 0:
            print("  ".join("-" * w for w in widths))


# -- one child process per mode --------------------------------------------------------


def run_modes(script, modes, argv):
    """Run `script --mode M ...` for each mode in turn, each in its own process
    (Django is set up once per process, on one database): their JSON results."""
    results = []
    for mode in modes:
        fd, name = tempfile.mkstemp(prefix="bench-", suffix=".json")
        os.close(fd)
        out = Path(name)
        try:
            child = subprocess.Popen([sys.executable, script, *argv, "--mode", mode, "--json", out])
            _wait_child(child)
            if child.returncode == 130:
                raise SystemExit(130)  # Ctrl-C: the child said so and cleaned up
            if child.returncode:
                raise SystemExit(f"{Path(script).name} --mode {mode} failed ({child.returncode})")
            results.append(json.loads(out.read_text()))
        finally:
            out.unlink(missing_ok=True)
    return results


def both_modes_or_one(script, args, measure_mode, summary):
    """A bench script's work: each mode in a child process of its own and a
    summary of them, or (in such a child) the one mode asked for."""
    if args.mode == "both":
        summary(run_modes(script, ["postgres", "sqlite"], sys.argv[1:]))
        return
    result = measure_mode(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result))


def main(run):
    """Run a script's main function; Ctrl-C ends it with a line, not a traceback
    (what it started is stopped on the way out)."""
    try:
        run()
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)


def _wait_child(child):
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue  # the child got the Ctrl-C too: let it stop what it started
        except SystemExit:
            child.terminate()  # SIGTERM: the child stops what it started, then exits
            child.wait()
            raise
