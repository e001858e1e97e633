"""The project's settings, with the bench's reference views added (bench/urls.py).

Every other value is the project's own, read from the same environment, so
the reference views and the paths they are compared with run under exactly
the same middleware, database settings and gunicorn workers.
"""

from tracker.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
