"""Time the statistics page, with cost, at 100k and at 10M conversions (PostgreSQL).

For each size it fills a scratch database with a year of clients and
conversions made in SQL (generate_series, not the ORM), rebuilds the rollup
with `manage.py rebuild_stats`, adds a year of spend (1 million rows by
default, --spend) and its cost to the rollup, and times the page's
server-side work, `crm.report.build` with cost and the revenue-against-cost
series, and the whole admin page (django.test.Client, logged in as a
superuser) for 14 and 90 days by campaign, by day × geo, and 90 days by
campaign then geo. Then a table: milliseconds at each size, the growth from
the smallest size to the largest, and PASS or MISS against the targets
(< 300 ms at the largest size, growth ≤ 3×).

    .venv/bin/python bench/statistics_page.py                         # 100k and 10M
    .venv/bin/python bench/statistics_page.py --sizes 100000,1000000  # a quick run
    .venv/bin/python bench/statistics_page.py --spend 100000          # less spend

Its database, `bench_stats` on BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432),
is dropped and created at the start and dropped at the end (kept with --keep).
About 15 minutes on a 2-core machine for 100k and 10M, most of it the 10M
data and its rebuild.
"""

import argparse
import datetime
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

DATABASE = "bench_stats"
TARGET_MS = 300
TARGET_GROWTH = 3.0
# (label, days, group); the last is an extra line, not one of the targets.
CASES = [
    ("14 days by campaign", 14, ["campaign"]),
    ("90 days by campaign", 90, ["campaign"]),
    ("14 days by day × geo", 14, ["day", "geo"]),
    ("90 days by day × geo", 90, ["day", "geo"]),
    ("90 days by campaign, geo", 90, ["campaign", "geo"]),
]
TARGETED = 4  # the first four cases are the issue's

# The shape of the data.
SPOTS = 5
CAMPAIGNS_PER_SPOT = 60  # 300 campaigns
ADSETS_PER_CAMPAIGN = 4
ADS_PER_ADSET = 3
MANAGERS = 10
PARTNERS_PER_SPOT = 2
DAYS = 365
CONVERSIONS_PER_CLIENT = 2.5
# 40 geos, the first the most frequent: a client's is GEOS[floor(40 * random()^3)],
# so about 29% are DE, 8% US, ... and the last ones a fraction of a percent each.
GEOS = (  # noqa: SIM905 - a list of codes reads best as one
    "DE US GB FR IT ES PL NL BR MX IN TR CA AU JP KR SE NO DK FI "
    "AT CH BE PT CZ RO HU GR IE NZ AR CL CO PE ZA NG EG SA AE TH"
).split()


def size_label(n):
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def timed_step(label, fn):
    common.progress(f"{label} ...")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    common.progress(f"{label}: {seconds:.1f} s")
    return result, seconds


# -- the fixed rows: managers, spots, goals, partners (ORM) ------------------------------


def fixtures():
    from django.contrib.auth import get_user_model

    from tracker.models import Partner, Spot

    user_model = get_user_model()
    admin = user_model.objects.create_superuser("bench-admin", "admin@bench.invalid", None)
    managers = [
        user_model.objects.create_user(f"manager{i + 1}", is_staff=True) for i in range(MANAGERS)
    ]
    spots, partners = [], []
    for i in range(SPOTS):
        spot = Spot.objects.create(name=f"Bench spot {i + 1}", slug=f"bench-{i + 1}")
        spot.managers.set(managers)
        spots.append(spot)
        for j in range(PARTNERS_PER_SPOT):
            partners.append(
                Partner.objects.create(spot=spot, name=f"Partner {i + 1}.{j + 1}", slug=f"p{j}")
            )
    Spot.refresh_has_managers()
    return {
        "admin": admin,
        "spots": [s.pk for s in spots],
        "managers": [m.pk for m in managers],
        "partners": [p.pk for p in partners],  # PARTNERS_PER_SPOT per spot, in spot order
    }


# -- the data: clients and conversions (SQL) ------------------------------------------


def bulk_connection(url):
    """A connection of its own for the bulk writes, with bulk settings that the
    page's measurements (on Django's connection) do not inherit."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    # Every row is valid by construction: no deferred foreign-key checks (one
    # trigger event per row and key, kept in memory until the commit).
    conn.execute("SET session_replication_role = replica")
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET work_mem = '256MB'")
    conn.execute("SET maintenance_work_mem = '512MB'")
    return conn


TABLES = ["crm_client", "crm_conversion"]


def drop_indexes(conn):
    """Drop the indexes of clients and conversions that no constraint owns (they
    are built again, far faster, once the rows are in): their definitions."""
    rows = conn.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        """,
        [TABLES],
    ).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in rows]


def generate(conn, conversions, fx):
    """~conversions / 2.5 clients and exactly `conversions` conversions, over a year."""
    clients = max(10, round(conversions / CONVERSIONS_PER_CLIENT))
    regs = clients // 2  # every even client registers
    depositors = sum(1 for i in range(clients % 10 + 1) if i % 10 in (2, 4, 6))
    depositors += clients // 10 * 3  # clients whose id ends in 2, 4 or 6 also deposit
    redeps = max(0, conversions - regs - depositors)
    params = {
        "clients": clients,
        "spots": fx["spots"],
        "nspots": SPOTS,
        "campaigns": CAMPAIGNS_PER_SPOT,
        "adsets": ADSETS_PER_CAMPAIGN,
        "ads": ADS_PER_ADSET,
        "geos": GEOS,
        "managers": fx["managers"],
        "partners": fx["partners"],
        "per_spot": PARTNERS_PER_SPOT,
        "days": DAYS,
        "depositors": depositors,
        "redeps": redeps,
    }
    conn.execute(
        "TRUNCATE crm_dailystat, crm_conversion, crm_client, crm_spend RESTART IDENTITY CASCADE"
    )
    conn.execute("SELECT setseed(0.42)")
    definitions, _ = timed_step(
        "  dropping client and conversion indexes", lambda: drop_indexes(conn)
    )
    steps = {}
    _, steps["clients"] = timed_step(
        f"  {clients:,} clients", lambda: conn.execute(CLIENTS_SQL, params)
    )
    _, steps["regs"] = timed_step(f"  {regs:,} regs", lambda: conn.execute(REGS_SQL, params))
    _, steps["deps"] = timed_step(f"  {depositors:,} deps", lambda: conn.execute(DEPS_SQL, params))
    _, steps["redeps"] = timed_step(
        f"  {redeps:,} redeps", lambda: conn.execute(REDEPS_SQL, params)
    )

    def index():
        for definition in definitions:
            conn.execute(definition)
        for table in TABLES:  # the next ids, as after ordinary inserts
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )

    _, steps["indexes"] = timed_step(f"  {len(definitions)} indexes built again", index)
    return clients, steps


# Ad-network ids look like Meta's: 18 digits. Everything a client has is drawn
# per row by random(); setseed makes a run repeatable.
CLIENTS_SQL = """
INSERT INTO crm_client (
    id, click_id, cl_id, user_id, username, name, geo, player_id, params, created,
    advert_pixel, advert_campaign_id, advert_adset_id, advert_ad_id,
    advert_campaign_name, advert_adset_name, advert_ad_name, advert_placement,
    advert_site_source_name, advert_landing_id, manager_id, spot_id,
    fbc, fbclid, fbp, ga, gclid, ip, page_url, ttclid, user_agent, yclid, ym_uid, partner_id)
SELECT
    i, md5('bench' || i), '', NULL, '', '', geo, '', '{}'::jsonb, created,
    '', (120200000000000000 + campaign)::text,
    (120210000000000000 + campaign * %(adsets)s + adset)::text,
    (120220000000000000 + (campaign * %(adsets)s + adset) * %(ads)s + ad)::text,
    'Campaign ' || campaign, 'Ad set ' || adset, 'Ad ' || ad, 'Facebook_Mobile_Feed',
    'fb', '', manager, spot, '', 'IwAR' || md5(i::text), '', '', '', NULL, '', '', '', '', '',
    partner
FROM (
    SELECT
        i,
        (%(spots)s::bigint[])[1 + i %% %(nspots)s] AS spot,
        -- campaigns of the spot, the first ones the busiest
        (i %% %(nspots)s) * %(campaigns)s + floor(%(campaigns)s * random() ^ 2)::int AS campaign,
        floor(%(adsets)s * random())::int AS adset,
        floor(%(ads)s * random())::int AS ad,
        (%(geos)s::text[])[
            1 + floor(array_length(%(geos)s::text[], 1) * random() ^ 3)::int] AS geo,
        CASE WHEN random() < 0.1 THEN NULL
             ELSE (%(managers)s::int[])[
                 1 + floor(array_length(%(managers)s::int[], 1) * random())::int]
        END AS manager,
        CASE WHEN random() < 0.3 THEN NULL
             ELSE (%(partners)s::bigint[])[
                 1 + (i %% %(nspots)s) * %(per_spot)s + floor(%(per_spot)s * random())::int]
        END AS partner,
        now() - random() * interval '1 day' * %(days)s AS created
    FROM generate_series(1, %(clients)s) i
) c
"""

# A conversion follows its click by up to `delay`, never later than now.
CONVERSION_COLUMNS = """
INSERT INTO crm_conversion (
    amount, currency, reported_amount, tid, status, created, updated, client_id, goal_id, spot_id)
"""
STATUS = """CASE WHEN random() < 0.07 THEN 'rejected' WHEN random() < 0.03 THEN 'pending'
                 ELSE 'approved' END"""

# Every even client registers: 1 reg per 2 clients, amount 0.
REGS_SQL = f"""{CONVERSION_COLUMNS}
SELECT 0, 'USD', 0, '', status, t, t, c.id, g.id, c.spot_id
FROM (
    SELECT id, spot_id, created + least(now() - created, interval '2 hours') * random() AS t,
           {STATUS} AS status
    FROM crm_client WHERE id %% 2 = 0
) c
JOIN tracker_goal g ON g.spot_id = c.spot_id AND g.token = 'reg'
"""

# Money: 15% in EUR (reported in USD at 1.0850), the rest USD; cents, sometimes more decimals.
MONEY = """
    SELECT *, CASE WHEN random() < 0.15 THEN 'EUR' ELSE 'USD' END AS currency
    FROM (SELECT *, round((10 + 990 * random() ^ 3)::numeric, (random() * 4)::int) AS amount
          FROM ({rows}) r) m
"""
MONEY_COLUMNS = """amount, currency,
    CASE WHEN currency = 'EUR' THEN round(amount * 1.0850, 8) ELSE amount END"""

# Clients whose id ends in 2, 4 or 6 deposit once (3 in 10; all of them registered).
DEPS_SQL = f"""{CONVERSION_COLUMNS}
SELECT {MONEY_COLUMNS}, 'dep-' || c.id, status, t, t, c.id, g.id, c.spot_id
FROM ({
    MONEY.format(
        rows='''
    SELECT id, spot_id, created + least(now() - created, interval '3 days') * random() AS t,
           '''
        + STATUS
        + ''' AS status
    FROM crm_client WHERE id %% 10 IN (2, 4, 6)
'''
    )
}) c
JOIN tracker_goal g ON g.spot_id = c.spot_id AND g.token = 'dep'
"""

# The rest are repeat deposits of the depositors, the earliest depositors the most
# (depositor j, 0-based, is the client 10 * (j / 3) + 2 + 2 * (j % 3)).
REDEPS_SQL = f"""{CONVERSION_COLUMNS}
SELECT {MONEY_COLUMNS}, 'redep-' || n, status, t, t, c.id, g.id, c.spot_id
FROM ({
    MONEY.format(
        rows='''
    SELECT n, c.id, c.spot_id,
           c.created + least(now() - c.created, interval '120 days') * random() AS t,
           '''
        + STATUS
        + ''' AS status
    FROM (SELECT n, floor(%(depositors)s * random() ^ 2)::bigint AS j
          FROM generate_series(1, %(redeps)s) n) r
    JOIN crm_client c ON c.id = 10 * (r.j / 3) + 2 + 2 * (r.j %% 3)
'''
    )
}) c
JOIN tracker_goal g ON g.spot_id = c.spot_id AND g.token = 'redep'
"""


# Spend as the ad networks report it: per day and ad (with its ad set, campaign
# and spot), a geo, 15% in EUR. Row n is day n % DAYS and ad k * 2089 % ADS of
# k = n / DAYS (2089 is prime to ADS): no two rows share a key, and the ads
# of every campaign get some, whatever the number of rows.
ADS = SPOTS * CAMPAIGNS_PER_SPOT * ADSETS_PER_CAMPAIGN * ADS_PER_ADSET
SPEND_SQL = """
INSERT INTO crm_spend (
    day, spot_id, source, campaign, adset, ad, geo, amount, currency, reported_amount, updated)
SELECT day, (%(spots)s::bigint[])[1 + campaign / %(campaigns)s], 'facebook:act_bench',
       (120200000000000000 + campaign)::text,
       (120210000000000000 + campaign * %(adsets)s + adset)::text,
       (120220000000000000 + (campaign * %(adsets)s + adset) * %(ads)s + ad)::text,
       geo, amount, currency,
       CASE WHEN currency = 'EUR' THEN round(amount * 1.0850, 8) ELSE amount END, now()
FROM (
    SELECT current_date - (n %% %(days)s) AS day,
           ad_n / (%(adsets)s * %(ads)s) AS campaign,
           ad_n / %(ads)s %% %(adsets)s AS adset,
           ad_n %% %(ads)s AS ad,
           (%(geos)s::text[])[1 + floor(array_length(%(geos)s::text[], 1) * random() ^ 3)::int]
               AS geo,
           round((1 + 199 * random())::numeric, 2) AS amount,
           CASE WHEN random() < 0.15 THEN 'EUR' ELSE 'USD' END AS currency
    FROM (SELECT n, (n / %(days)s) * 2089 %% %(all_ads)s AS ad_n
          FROM generate_series(0, %(rows)s - 1) n) s
) r
"""


def generate_spend(conn, rows, fx):
    params = {
        "rows": min(rows, DAYS * ADS),
        "spots": fx["spots"],
        "campaigns": CAMPAIGNS_PER_SPOT,
        "adsets": ADSETS_PER_CAMPAIGN,
        "ads": ADS_PER_ADSET,
        "all_ads": ADS,
        "geos": GEOS,
        "days": DAYS,
    }
    conn.execute(SPEND_SQL, params)
    return params["rows"]


def add_cost(conn):
    """The spend's cost onto the rollup's leads rows, at every grain and on both
    bases, with manager and partner 0: what crm.spend keeps (crm.spend.cost_rows),
    written as one INSERT … SELECT … ON CONFLICT per grain and basis, as
    crm.stats.rebuild_spot writes the counts."""
    from crm import stats
    from crm.models import DailyStat

    key = ", ".join(stats.KEY)
    for grain, kept in stats.GRAINS.items():
        dims = [name if name in kept else "''" for name in ("campaign", "adset", "ad", "geo")]
        grouped = ", ".join(["day", "spot_id", *(d for d in dims if d != "''")])
        for basis in (DailyStat.CONVERSION, DailyStat.CLICK):
            conn.execute(
                f"""
                INSERT INTO crm_dailystat ({key}, count, amount, unrated, cost, cost_unrated)
                SELECT %s, %s, day, spot_id, 0, {", ".join(dims)}, 0, 0, 0, 0, 0,
                       coalesce(sum(reported_amount), 0), count(*) - count(reported_amount)
                FROM crm_spend GROUP BY {grouped}
                ON CONFLICT ({key}) DO UPDATE SET
                    cost = crm_dailystat.cost + excluded.cost,
                    cost_unrated = crm_dailystat.cost_unrated + excluded.cost_unrated
                """,
                [grain, basis],
            )


def check_cost(conn):
    """The rollup's cost at each grain equals the spend's, twice (one per basis)."""
    spent = conn.execute("SELECT coalesce(sum(reported_amount), 0) FROM crm_spend").fetchone()[0]
    per_grain = dict(
        conn.execute("SELECT grain, sum(cost) FROM crm_dailystat GROUP BY grain").fetchall()
    )
    wrong = {g: c for g, c in per_grain.items() if c != 2 * spent}
    if wrong:
        raise RuntimeError(f"rollup cost {wrong} is not twice the spend {spent}")
    return spent


# -- the rebuild and the measurements --------------------------------------------------


def rebuild():
    from django.core.management import call_command

    call_command("rebuild_stats")  # prints its progress bar on stderr


def rollup_rows():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT grain, count(*) FROM crm_dailystat GROUP BY grain ORDER BY grain")
        return dict(cursor.fetchall())


def vacuum_analyze():
    """What autovacuum does minutes after a bulk write; done now, so it does not
    run in the middle of the measurements, and the planner has statistics."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("crm_dailystat", "crm_spend", *TABLES):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def query_of(case):
    from django.utils import timezone

    from crm import report

    _, days, group = case
    today = timezone.localdate()
    return report.Query(today - datetime.timedelta(days=days - 1), today, "conversion", list(group))


def rows_read(query):
    """How many rollup rows the report's query reads (as crm.report.build filters them)."""
    from django.db.models import Q

    from crm import report
    from crm.models import DailyStat

    wanted = Q(basis=DailyStat.CLICK, goal_pk=0) | Q(basis=query.basis, goal_pk__gt=0)
    return DailyStat.objects.filter(
        wanted,
        grain=report.grain_for(query),
        day__gte=query.date_from,
        day__lte=query.date_to,
    ).count()


def page_client(admin):
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    return client


def page_url(query):
    group, then = query.group[0], (query.group[1] if len(query.group) > 1 else "")
    return (
        f"/admin/crm/dailystat/?date_from={query.date_from}&date_to={query.date_to}"
        f"&basis={query.basis}&group={group}&then={then}"
    )


SLOW_MS = 2000  # a case whose warm-up takes longer is timed 3 times, not --runs


def median_ms(fn, runs):
    """(median ms of `runs` calls after a warm-up call, the warm-up's result)."""
    start = time.perf_counter()
    warm = fn()  # warm once, as a page in use is
    if (time.perf_counter() - start) * 1000 > SLOW_MS:
        runs = min(runs, 3)  # seconds per run: far over the target either way
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), warm


def measure(client, runs):
    from crm import report

    results = {}
    for case in CASES:
        query = query_of(case)

        def build(q=query):
            return report.build(q, daily=True)  # as the page: with its revenue and cost per day

        url = page_url(query)

        def page(url=url):
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
            return response

        report_ms, built = median_ms(build, runs)
        lines = sum(1 for _ in built.lines)
        results[case[0]] = {
            "report": report_ms,
            "page": median_ms(page, runs)[0],
            "rows": rows_read(query),
            "lines": lines,
            "revenue": built.total.revenue,
            "cost": built.total.cost,
            "roi": built.total.value("roi"),
        }
        r = results[case[0]]
        common.progress(
            f"  {case[0]:26s} report {r['report']:7.1f} ms  page {r['page']:7.1f} ms  "
            f"rollup rows read {r['rows']:,}, report lines {lines:,}, "
            f"cost {r['cost']:,.0f}  load {common.loadavg()}"
        )
    return results


def explain(case):
    """EXPLAIN ANALYZE of the rollup query report.build makes for `case`."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from crm import report

    with CaptureQueriesContext(connection) as captured:
        report.build(query_of(case))
    sql = next(q["sql"] for q in captured.captured_queries if "crm_dailystat" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return sql, "\n".join(row[0] for row in cursor.fetchall())


def run_size(conn, size, fx, client, runs, spend_rows):
    common.progress(f"== {size_label(size)} conversions, {size_label(spend_rows)} spend rows")
    start = time.perf_counter()
    clients, steps = generate(conn, size, fx)
    steps["generate"] = time.perf_counter() - start
    common.progress(
        f"generated {clients:,} clients and {size:,} conversions in {steps['generate']:.1f} s"
    )
    _, steps["rebuild"] = timed_step("manage.py rebuild_stats", rebuild)
    spend_rows, steps["spend"] = timed_step(
        f"  {spend_rows:,} spend rows", lambda: generate_spend(conn, spend_rows, fx)
    )
    _, steps["cost"] = timed_step("  their cost onto the rollup", lambda: add_cost(conn))
    spent = check_cost(conn)
    common.progress(f"spend {spent:,.2f} in the reporting currency, on the rollup at every grain")
    grains = rollup_rows()
    common.progress(
        "rollup rows per grain: "
        + ", ".join(f"{g or '(none)'} {n:,}" for g, n in grains.items())
        + f"; total {sum(grains.values()):,}"
    )
    _, steps["vacuum"] = timed_step("VACUUM ANALYZE", vacuum_analyze)
    common.progress(f"timing the page (warm once, median of {runs})")
    return {
        "clients": clients,
        "spend": spend_rows,
        "steps": steps,
        "grains": grains,
        "cases": measure(client, runs),
    }


# -- the summary --------------------------------------------------------------------------


def summary(sizes, results, runs):
    labels = [size_label(s) for s in sizes]
    print()
    print(
        f"Statistics page with cost, PostgreSQL, {SPOTS} spots, a year of data and "
        f"{size_label(results[sizes[-1]]['spend'])} spend rows; "
        f"server time in ms, warm, median of {runs}; load {common.loadavg()}"
    )
    headers = ["case", "timed", *(f"{x} ms" for x in labels), "growth"]
    headers += [f"< {TARGET_MS} ms at {labels[-1]}", f"growth ≤ {TARGET_GROWTH:g}×"]
    rows = []
    misses = []
    for n, (name, *_rest) in enumerate(CASES):
        for timed in ("report", "page"):
            ms = [results[s]["cases"][name][timed] for s in sizes]
            growth = ms[-1] / ms[0]
            fast, flat = ms[-1] < TARGET_MS, growth <= TARGET_GROWTH
            extra = n >= TARGETED
            if not extra and not (fast and flat):
                misses.append((name, timed))
            rows.append(
                [
                    name + (" (extra)" if extra else ""),
                    "report.build" if timed == "report" else "admin page",
                    *(f"{x:.1f}" for x in ms),
                    f"{growth:.2f}×" if len(sizes) > 1 else "",
                    "PASS" if fast else "MISS",
                    ("PASS" if flat else "MISS") if len(sizes) > 1 else "",
                ]
            )
    common.table(headers, rows)
    print()
    print("Rollup rows the report reads (report lines)")
    common.table(
        ["case", *labels],
        [
            [name]
            + [
                f"{results[s]['cases'][name]['rows']:,} ({results[s]['cases'][name]['lines']:,})"
                for s in sizes
            ]
            for name, *_rest in CASES
        ],
    )
    print()
    print(f"The report with cost at {labels[-1]} (all spots, conversion date)")
    largest = results[sizes[-1]]["cases"]
    common.table(
        ["case", "revenue", "cost", "profit", "ROI"],
        [
            [
                name,
                f"{largest[name]['revenue']:,.2f}",
                f"{largest[name]['cost']:,.2f}",
                f"{largest[name]['revenue'] - largest[name]['cost']:,.2f}",
                "" if largest[name]["roi"] is None else f"{largest[name]['roi']:.1f}%",
            ]
            for name, *_rest in CASES
        ],
    )
    print()
    print("Data and rebuild, seconds")
    step_names = [
        "clients", "regs", "deps", "redeps", "indexes", "generate", "rebuild", "spend", "cost",
        "vacuum",
    ]  # fmt: skip
    common.table(
        ["size", "clients", "spend rows", *step_names, "rollup rows"],
        [
            [
                size_label(s),
                f"{results[s]['clients']:,}",
                f"{results[s]['spend']:,}",
                *(f"{results[s]['steps'][k]:.1f}" for k in step_names),
                f"{sum(results[s]['grains'].values()):,}",
            ]
            for s in sizes
        ],
    )
    print()
    grains = sorted({g for s in sizes for g in results[s]["grains"]})
    print("Rollup rows per grain")
    common.table(
        ["grain", *labels],
        [[g or "(none)", *(f"{results[s]['grains'].get(g, 0):,}" for s in sizes)] for g in grains],
    )
    print()
    if misses:
        print("MISSED: " + "; ".join(f"{name} ({timed})" for name, timed in misses))
    else:
        print(f"All targeted cases PASS at {labels[-1]}.")
    return misses


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="100000,10000000",
        help="conversions per measurement, comma separated (default 100000,10000000)",
    )
    parser.add_argument(
        "--spend",
        type=int,
        default=1_000_000,
        help="spend rows at every size (default 1000000; at most a row per ad and day)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (median)")
    parser.add_argument("--keep", action="store_true", help="keep the bench_stats database")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print EXPLAIN ANALYZE of every case's rollup query at the largest size "
        "(by default only of the cases that miss a target)",
    )
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    with common.Run("stats") as run:
        url = common.postgres_db(run, DATABASE)
        if args.keep:
            run.cleanups.pop()  # the drop of the database
        env = common.app_env(url)  # production settings: DEBUG off
        common.progress(f"migrating the scratch database {DATABASE}")
        common.migrate(env)
        common.setup_django(env)
        # whitenoise notes that STATIC_ROOT does not exist: no collectstatic, nothing served
        warnings.filterwarnings("ignore", message="No directory at")
        run.cleanups.append(common.close_database)

        from django.test.utils import override_settings

        # The admin page's templates name static files: the plain storage, so a
        # run needs no collectstatic (the manifest storage only maps the names).
        with override_settings(
            STORAGES={
                "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            }
        ):
            fx = fixtures()
            client = page_client(fx["admin"])
            conn = bulk_connection(url)
            results = {}
            try:
                for size in sizes:
                    results[size] = run_size(conn, size, fx, client, args.runs, args.spend)
            finally:
                conn.close()
            misses = summary(sizes, results, args.runs)
            explained = [c for c in CASES if args.explain or (c[0], "report") in misses]
            for case in explained:
                sql, plan = explain(case)
                print(f"\nEXPLAIN ANALYZE, {case[0]}, {size_label(sizes[-1])}:\n{sql}\n{plan}")
        if args.keep:
            print(f"\nKept: DATABASE_URL={url}")


if __name__ == "__main__":
    common.main(main)
