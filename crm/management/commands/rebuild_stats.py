"""Recompute the statistics rollup from clients, conversions and spend."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from crm import spend, stats
from crm.models import DailyStat
from tracker.models import Spot
from tracker.progress import Progress


class Command(BaseCommand):
    help = (
        "Recompute the statistics rollup (crm.DailyStat) from the clients, conversions and spend. "
        "Needed after bulk edits made outside the application; run it when traffic is quiet."
    )

    def add_arguments(self, parser):
        parser.add_argument("--spot", help="Only this spot (its slug).")

    def handle(self, *args, **options):
        spots = Spot.objects.order_by("pk")
        if options["spot"]:
            spots = spots.filter(slug=options["spot"])
            if not spots.exists():
                raise CommandError(f"No spot with the slug {options['spot']!r}.")
        ids = list(spots.values_list("pk", flat=True))
        progress = Progress(len(ids) * stats.REBUILD_STEPS, "Rebuilding statistics", self.stderr)
        rows = 0
        for spot_id in ids:
            # The spot's cost goes back in the transaction that cleared it.
            with transaction.atomic():
                stats.rebuild_spot(spot_id, progress.advance)
                spend.rebuild_cost(spot_id)
                rows += DailyStat.objects.filter(spot_id=spot_id).count()
        progress.finish()
        self.stdout.write(self.style.SUCCESS(f"{rows} statistics rows for {len(ids)} spot(s)."))
