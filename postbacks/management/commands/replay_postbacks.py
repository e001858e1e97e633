from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from postbacks.incoming.process import replay, replayable
from postbacks.models import IncomingPostback


class Command(BaseCommand):
    help = (
        "Process stored unmatched postbacks again (e.g. once their clients exist), and "
        "those whose processing was lost, oldest first. --rejected also replays rejected ones."
    )

    def add_arguments(self, parser):
        parser.add_argument("--spot", help="Only this spot (its slug).")
        parser.add_argument(
            "--rejected", action="store_true", help="Replay rejected postbacks too."
        )
        parser.add_argument(
            "--id", type=int, action="append", dest="ids", help="Only this postback (repeatable)."
        )

    def handle(self, *args, spot=None, rejected=False, ids=None, **options):
        rows = IncomingPostback.objects.filter(replayable())
        if not rejected:
            rows = rows.exclude(status=IncomingPostback.REJECTED)
        if spot:
            rows = rows.filter(spot__slug=spot)
        if ids:
            rows = rows.filter(pk__in=ids)
        # Oldest first: a first deposit must be decided before the repeat that followed it.
        pks = list(rows.order_by("received", "id").values_list("pk", flat=True))
        if not pks and (spot or ids):
            raise CommandError("No postback to replay matches these options.")
        self.stdout.write(f"Replaying {len(pks)} postback(s).")
        counts = Counter()
        for n, pk in enumerate(pks, 1):
            row = IncomingPostback.objects.get(pk=pk)
            before = row.status
            outcome = replay(row)
            result = outcome.status if outcome else "skipped (already replayed)"
            counts[result] += 1
            self.stdout.write(f"[{n}/{len(pks)}] #{pk} {before} -> {result}")
        summary = ", ".join(f"{status}: {count}" for status, count in sorted(counts.items()))
        self.stdout.write(self.style.SUCCESS(f"Done. {summary or 'nothing to replay'}"))
