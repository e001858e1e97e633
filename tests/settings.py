"""Test settings: the real settings with a throwaway secret and plain static files."""

import atexit
import contextlib
import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")

from tracker.settings import *  # noqa: E402,F403

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Static files come from the finders in tests; there is no collected folder.
MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # The test database is a file in WAL mode, as the project's database is,
    # not Django's default in-memory one: that one is shared-cache, where two
    # threads writing at once (the delivery loop and a request) fail at once
    # with "database table is locked", as the busy timeout does not cover
    # shared-cache locks; on a file the second waits its turn. A name of this
    # run's own, as other runs may use the same checkout at once.
    _name = os.path.join(tempfile.gettempdir(), f"tracker-test-{os.getpid()}.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": _name}  # noqa: F405

    @atexit.register
    def _remove_test_database():
        # Django deletes the database file; SQLite leaves its WAL beside it
        # when a thread's connection was still open then (a live server's).
        for path in (_name, f"{_name}-wal", f"{_name}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


# The workers fetch no exchange rates from the ECB in tests; a test that
# wants them turns this on with a stand-in server's URL.
ECB_FETCH = False
