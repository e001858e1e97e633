"""gunicorn's settings for the web processes.

`gunicorn tracker.wsgi`, run from this folder, reads this file (gunicorn looks
for ./gunicorn.conf.py by default; `-c path` names another). Command-line
flags and GUNICORN_CMD_ARGS override any value here.
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path

import environ

# The same .env as the Django settings, so WEB_BIND and WEB_CONCURRENCY may
# live there too; real environment variables win.
environ.Env.read_env(Path(__file__).resolve().parent / ".env", overwrite=False)


def _cpus():
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Loopback: the README runs the web processes behind nginx or another TLS
# proxy on the same machine. WEB_BIND="0.0.0.0:8000" (comma separated for
# several addresses, or unix:/path) listens elsewhere.
bind = [a.strip() for a in os.environ.get("WEB_BIND", "127.0.0.1:8000").split(",") if a.strip()]

# Sync workers serve one request at a time, and a postback mostly waits on
# the database: two per CPU plus one, gunicorn's rule of thumb. Capped at 12
# because every worker holds its own PostgreSQL connections and PostgreSQL
# allows 100 by default; more processes on more machines scale further.
# WEB_CONCURRENCY is gunicorn's own variable for this.
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * _cpus() + 1, 12))

# A worker silent this long is stuck (a lock wait, an unreachable database)
# and is replaced; a postback takes milliseconds. On a restart, requests in
# flight get as long to finish.
timeout = 30
graceful_timeout = 30

# The request line (method, URL, version) may be this long. gunicorn's
# default, 4094 bytes, refuses long partner URLs before Django sees them, so
# they would never be stored. 8190 is the most gunicorn allows short of 0,
# which means unlimited: one request line could then fill a worker's memory.
# It is also what nginx's default buffers let through (8 KiB), so a proxy in
# front refuses no less; real postback URLs are far shorter. The tracker
# would store up to 64 KiB of a query: raise nginx's large_client_header_buffers
# and pass --limit-request-line 0 only for a partner that needs more.
limit_request_line = 8190

# No access log: the incoming postback URL carries the spot's secret token in
# its path and click ids in its query, and every postback is stored in the
# database anyway (admin: Incoming postbacks). --access-logfile - turns it on.
accesslog = None
errorlog = "-"


# Prometheus metrics (tracker/metrics.py): each worker writes its figures to
# files in PROMETHEUS_MULTIPROC_DIR and a scrape of any worker sums them all.
# prometheus_client reads the variable when a worker first imports it, so it
# is set here, in the master, before any worker starts. Not set (or empty)
# while metrics are on: a temporary directory of this server's own, removed
# when it stops. Set it (in .env) to share one with the RQ workers.
METRICS_ON = bool(os.environ.get("METRICS_TOKEN") or os.environ.get("METRICS_ALLOWED_IPS"))
made_metrics_dir = ""
if METRICS_ON and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    made_metrics_dir = tempfile.mkdtemp(prefix="postback-tracker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made_metrics_dir
elif "PROMETHEUS_MULTIPROC_DIR" in os.environ and not os.environ["PROMETHEUS_MULTIPROC_DIR"]:
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]  # empty would mean files in the current folder


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def empty_metrics_dir(folder):
    """Make the directory, and remove the files of processes that are gone (a
    previous run's workers): their counts would be added to this run's. The
    files of live processes stay: RQ workers started before this server
    write there too."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    for path in Path(folder).glob("*.db"):  # counter_<pid>.db, histogram_<pid>.db, ...
        pid = path.stem.rsplit("_", 1)[-1]
        if not pid.isdigit() or not alive(int(pid)):
            path.unlink(missing_ok=True)


# gunicorn prints a request it refuses (a malformed request line) in full, and
# that may be an incoming URL with its secret token: its log goes through the
# application's filter too (tracker/logmask.py). A filter on the logger, not
# a logging config: gunicorn turns its access log on when given one.
def on_starting(server):
    from tracker.logmask import MaskTokens

    logging.getLogger("gunicorn.error").addFilter(MaskTokens())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        empty_metrics_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server, worker):
    """A worker ended (killed, timed out, or replaced): its live gauges go with it;
    its counts stay, as a counter must not go down."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if made_metrics_dir:
        shutil.rmtree(made_metrics_dir, ignore_errors=True)


# No control socket: its default path is shared by every gunicorn of the
# user, so one instance stopping removes another's. Nothing here uses it.
control_socket_disable = True
