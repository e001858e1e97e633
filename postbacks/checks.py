"""System checks of the delivery settings (run by every manage.py command)."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def delivery_deadlines(app_configs, **kwargs):
    """The claim must outlast the longest attempt, and RQ's job timeout the claim:
    otherwise a second sender could send a delivery whose attempt still runs."""
    errors = []
    longest = settings.POSTBACKS_MAX_TIMEOUT
    claim = settings.POSTBACKS_CLAIM_SECONDS
    if claim < 2 * longest:
        errors.append(
            Error(
                f"POSTBACKS_CLAIM_SECONDS ({claim:g}) must be at least twice "
                f"POSTBACKS_MAX_TIMEOUT ({longest:g}).",
                id="postbacks.E001",
            )
        )
    for name, queue in settings.RQ_QUEUES.items():
        job_timeout = queue.get("DEFAULT_TIMEOUT")
        if job_timeout is not None and 0 < job_timeout <= claim:
            errors.append(
                Error(
                    f"RQ_QUEUES[{name!r}]['DEFAULT_TIMEOUT'] ({job_timeout}) must be above "
                    f"POSTBACKS_CLAIM_SECONDS ({claim:g}).",
                    id="postbacks.E002",
                )
            )
    return errors


# The claim of a delivery batch is one UPDATE … RETURNING (postbacks/delivery/batch.py).
SQLITE_MIN = (3, 35)


@register()
def sqlite_version(app_configs, **kwargs):
    import sqlite3

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        return []
    if sqlite3.sqlite_version_info >= SQLITE_MIN:
        return []
    return [
        Error(
            f"SQLite {sqlite3.sqlite_version} is too old: the embedded mode needs "
            f"{'.'.join(map(str, SQLITE_MIN))} or newer (2021). Use a Python built "
            "with a newer SQLite, or PostgreSQL (DATABASE_URL).",
            id="postbacks.E003",
        )
    ]
