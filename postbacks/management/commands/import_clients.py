"""Import clients from a CSV file into a spot.

In postbacks, beside import_conversions: a new client is a lead event, which
an import sends like a click unless told not to (--no-postbacks)."""

import contextlib

from django.core.management.base import BaseCommand, CommandError

from crm.imports import Summary, count_lines, import_client, print_summary, read_rows
from postbacks.delivery.fanout import no_lead_events
from tracker.models import Spot
from tracker.progress import Progress


class Command(BaseCommand):
    help = (
        "Import clients from CSV. Columns: user_id, username, name, geo, cl_id, "
        "advert__<key> (campaign_id, pixel, ...); any other column goes into params. "
        "A row whose user_id the spot has already is skipped. Each new client is a lead "
        "event, sent to the targets that pick it, as over HTTP; --no-postbacks back-fills "
        "history without."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--spot", required=True, help="The spot's slug.")
        parser.add_argument(
            "--no-postbacks", action="store_true", help="Send no lead events (back-filling)."
        )

    def handle(self, *args, **options):
        spot = Spot.objects.filter(slug=options["spot"]).first()
        if spot is None:
            raise CommandError(f"No spot with the slug {options['spot']!r}.")
        summary = Summary()
        total = count_lines(options["path"])
        progress = Progress(total, "Importing clients", self.stderr)
        quiet = no_lead_events() if options["no_postbacks"] else contextlib.nullcontext()
        try:
            with quiet, open(options["path"], newline="", encoding="utf-8-sig") as f:
                for line, row in read_rows(f):
                    import_client(line, row, summary, spot)
                    progress.advance()
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise CommandError(f"Could not read {options['path']}: {e}") from e
        progress.finish()
        print_summary(self, summary, "client(s) created", "already there (same user_id)")
