import datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from postbacks.delivery.attempts import resend
from postbacks.models import Delivery
from tracker.progress import Progress

BATCH = 500


def parse_when(text, end=False):
    try:
        day = parse_date(text)
        value = None if day else parse_datetime(text)
    except ValueError:
        day = value = None
    if day is not None:
        # A day is inclusive: --until 2026-01-31 takes the whole 31st.
        value = datetime.datetime.combine(day, datetime.time.min)
        if end:
            value += datetime.timedelta(days=1)
    if value is None:
        raise CommandError(f"{text!r} is not a date (YYYY-MM-DD) or a date-time.")
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


class Command(BaseCommand):
    help = "Send failed deliveries created in a date range again (same delivery ids)."

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="YYYY-MM-DD or an ISO date-time")
        parser.add_argument("--until", required=True, help="YYYY-MM-DD (inclusive) or date-time")

    def handle(self, *args, **options):
        since = parse_when(options["since"])
        until = parse_when(options["until"], end=True)
        if until <= since:
            raise CommandError("--until must come after --since.")
        failed = Delivery.objects.filter(
            status=Delivery.FAILED, created__gte=since, created__lt=until
        )
        ids = list(failed.values_list("pk", flat=True))
        total = len(ids)
        progress = Progress(total, "Resending", self.stdout)
        for start in range(0, total, BATCH):
            batch = ids[start : start + BATCH]
            with transaction.atomic():
                resend(Delivery.objects.filter(pk__in=batch))
            progress.advance(len(batch))
        progress.finish()
        self.stdout.write(f"Resent {total} failed deliveries.")
