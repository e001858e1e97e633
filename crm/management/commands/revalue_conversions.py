"""Fill in (or recompute) the reporting-currency amounts of conversions from the rates."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from crm import rates, stats
from crm.models import UNRATED, Conversion
from tracker.progress import Progress

CHUNK = 1000


class Command(BaseCommand):
    help = (
        "Give conversions without an amount in the reporting currency one, from the "
        "exchange rates now stored (the rate of their day, or the latest before it), and "
        "move the statistics with them. --all recomputes every conversion: after correcting "
        "rates or changing REPORTING_CURRENCY."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all", action="store_true", help="Recompute every conversion, not only unrated ones."
        )

    def handle(self, *args, **options):
        todo = Conversion.objects.all() if options["all"] else unrated()
        ids = list(todo.order_by("pk").values_list("pk", flat=True))
        currencies = set(todo.values_list("currency", flat=True).distinct())
        table = rates.RateTable(currencies)
        progress = Progress(len(ids), f"Revaluing in {settings.REPORTING_CURRENCY}", self.stderr)
        changed = 0
        for start in range(0, len(ids), CHUNK):
            changed += revalue(ids[start : start + CHUNK], table)
            progress.advance(len(ids[start : start + CHUNK]))
        progress.finish()
        left = unrated().count()
        self.stdout.write(self.style.SUCCESS(f"{changed} of {len(ids)} conversion(s) revalued."))
        if left:
            self.stdout.write(
                self.style.WARNING(f"{left} still have no rate: {', '.join(missing_currencies())}.")
            )


def unrated():
    return Conversion.objects.filter(UNRATED)


def missing_currencies():
    return sorted(set(unrated().values_list("currency", flat=True).distinct()))


def revalue(ids, table):
    """Revalue one chunk under its rows' locks, moving the rollup by the difference."""
    with transaction.atomic():
        rows = list(
            Conversion.objects.filter(pk__in=ids)
            .select_related("client")
            .select_for_update(of=("self",))
        )
        minus, plus, changed = [], [], []
        for conversion in rows:
            old = stats.conversion_state(conversion)
            day = stats.day_of(conversion.created)
            value = rates.to_reporting(
                conversion.amount, conversion.currency, day, rate=table.rate_on
            )
            if value == conversion.reported_amount:
                continue
            conversion.reported_amount = value
            client = stats.client_state(conversion.client)
            minus += stats.conversion_rows(old, client)
            plus += stats.conversion_rows(stats.conversion_state(conversion), client)
            changed.append(conversion)
        Conversion.objects.bulk_update(changed, ["reported_amount"])
        stats.apply(minus, plus)
    return len(changed)
