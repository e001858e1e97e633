"""Import exchange rates from the ECB's CSV files or a plain date,currency,rate CSV."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from crm import rates
from crm.imports import count_lines
from crm.models import UNRATED, Conversion
from tracker.progress import Progress

CHUNK = 5000


class Command(BaseCommand):
    help = (
        "Import exchange rates from the ECB's daily or historical CSV (eurofxref.csv, "
        "eurofxref-hist.csv; rates per euro, converted to the reporting currency) or from a "
        "plain CSV of date,currency,rate (units of the currency per one unit of the reporting "
        "currency). A day already stored takes the file's rate. The whole file is checked "
        "first: a bad line stores nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?")
        parser.add_argument(
            "--ecb",
            action="store_true",
            help="Fetch the ECB's latest daily rates (ECB_RATES_URL) instead of reading a file, "
            "and revalue the conversions and spend they change, as the workers do once a day.",
        )

    def handle(self, *args, **options):
        base, path = settings.REPORTING_CURRENCY, options["path"]
        if options["ecb"] == bool(path):
            raise CommandError("Give the path of a rate file, or --ecb to fetch the ECB's.")
        if options["ecb"]:
            return self.fetch()
        found = self.read(path, base)
        progress = Progress(len(found), "Storing rates", self.stderr)
        with transaction.atomic():
            for start in range(0, len(found), CHUNK):
                progress.advance(rates.store(found[start : start + CHUNK], base))
        progress.finish()
        self.stdout.write(self.style.SUCCESS(f"{len(found)} rate(s) per {base} stored."))
        missing = Conversion.objects.filter(UNRATED).count()
        if missing:
            self.stdout.write(
                f"{missing} conversion(s) have no amount in {base} yet: "
                "run manage.py revalue_conversions."
            )

    def read(self, path, base):
        progress = Progress(count_lines(path) + 1, "Reading rates", self.stderr)
        found = []
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                for line_rates in rates.read_file(f, base):
                    found += line_rates
                    progress.advance()
        except (OSError, UnicodeDecodeError, rates.BadFile) as e:
            raise CommandError(f"Could not import {path}: {e} No rate was stored.") from e
        progress.finish()
        if not found:
            raise CommandError(
                f"{path} has no rate for {base} (the reporting currency): nothing stored."
            )
        return found

    def fetch(self):
        from crm import revalue

        try:
            found = rates.fetch_ecb()
        except rates.FetchError as e:
            raise CommandError(f"Could not fetch the ECB's rates: {e} No rate was stored.") from e
        base = settings.REPORTING_CURRENCY
        with transaction.atomic():
            since = rates.changed_since(found, base)
            rates.store(found, base)
        self.stdout.write(f"{len(found)} rate(s) per {base} of {found[0][0]} fetched.")
        for currency, day in sorted(since.items()):
            changed = revalue.revalue(currency, day)
            self.stdout.write(f"{currency} from {day}: {changed} conversion(s) revalued.")
        self.stdout.write(self.style.SUCCESS(f"{len(since)} currency(ies) new or changed."))
