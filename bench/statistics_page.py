"""Time the statistics report on a large rollup (PostgreSQL).

Fills crm_dailystat with synthetic rows standing for many millions of
conversions (a year × spots × campaigns × geos × goals), then times the
report of the admin page for 14 and 90 days, by campaign and by geo.

    DATABASE_URL=postgres://... python bench/statistics_page.py [--rows-per-day 6000]

It writes into the database it is given: use a scratch database.
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracker.settings")
os.environ.setdefault("DEBUG", "true")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from crm import report  # noqa: E402
from crm.models import DailyStat  # noqa: E402
from tracker.models import Spot  # noqa: E402


def fill(rows_per_day, days=365):
    spots = [
        Spot.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench {i}"})[0]
        for i in range(5)
    ]
    goal_ids = [g.pk for s in spots for g in s.goals.all()]
    DailyStat.objects.filter(spot__in=spots).delete()
    start = timezone.localdate() - datetime.timedelta(days=days - 1)
    per_spot = rows_per_day // len(spots)
    with connection.cursor() as cur:
        for spot in spots:
            goals = [g for g in goal_ids if Spot.objects.get(pk=spot.pk).goals.filter(pk=g)]
            cur.execute(
                """
                INSERT INTO crm_dailystat
                  (basis, day, spot_id, goal_pk, campaign, geo, manager_pk, count, amount)
                SELECT b, %s::date + d, %s, g, 'c' || (n %% 200), 'G' || (n %% 30), n %% 8,
                       1 + (n %% 7), (n %% 500)::numeric
                FROM generate_series(0, %s) d,
                     generate_series(0, %s) n,
                     unnest(%s::bigint[]) g,
                     unnest(ARRAY['conversion', 'click']) b
                ON CONFLICT DO NOTHING
                """,
                [start, spot.pk, days - 1, per_spot // (2 * (len(goals) + 1)), [0, *goals]],
            )
        cur.execute("ANALYZE crm_dailystat")
    return DailyStat.objects.count()


def timed(label, fn, runs=5):
    fn()  # warm the cache once, as a page in use is
    best = min(_once(fn) for _ in range(runs))
    print(f"{label:40s} {best * 1000:8.1f} ms")


def _once(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows-per-day", type=int, default=6000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL to a scratch PostgreSQL database.")
    call_command("migrate", verbosity=0)
    total = fill(args.rows_per_day)
    conversions = DailyStat.objects.filter(basis="conversion").exclude(goal_pk=0)
    represented = sum(conversions.values_list("count", flat=True).iterator())
    print(f"rollup rows: {total}, conversions they stand for: {represented}")
    today = timezone.localdate()
    for days in (14, 90):
        start = today - datetime.timedelta(days=days - 1)
        for dim in ("campaign", "geo", "manager"):
            timed(
                f"{days} days by {dim}",
                lambda s=start, d=dim: report.build(s, today, "conversion", d),
            )


if __name__ == "__main__":
    main()
