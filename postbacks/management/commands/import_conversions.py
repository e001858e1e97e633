"""Import conversions from a tracker's CSV: subid,payout,tid,status.

It lives in postbacks, not crm, because an imported conversion makes what the
same event over HTTP makes: its deliveries and its system message."""

from django.core.management.base import BaseCommand, CommandError

from crm.imports import (
    Summary,
    count_lines,
    import_conversion,
    partner_status_map,
    print_summary,
    read_rows,
)
from postbacks.delivery.fanout import announce
from tracker.models import Partner, Spot
from tracker.progress import Progress


class Command(BaseCommand):
    help = (
        "Import conversions from CSV with the columns subid,payout,tid,status (optional: "
        "currency, event). subid is our click id or the client's cl_id. Rows go through "
        "the same rules as postbacks (dep/redep, a repeated tid updates) and, like them, "
        "send the outgoing postbacks and pixels and post the system messages of new "
        "and changed conversions; --no-postbacks back-fills history without either."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--event", default="sale", help="Event word for rows without one (default: sale)."
        )
        parser.add_argument("--spot", help="Limit cl_id matching to this spot (its slug).")
        parser.add_argument("--partner", help="Map statuses with this partner's status map.")
        parser.add_argument(
            "--no-postbacks",
            action="store_true",
            help="Write no deliveries and no system messages (back-filling history).",
        )

    def handle(self, *args, **options):
        spot = partner = None
        if options["spot"]:
            spot = Spot.objects.filter(slug=options["spot"]).first()
            if spot is None:
                raise CommandError(f"No spot with the slug {options['spot']!r}.")
        if options["partner"]:
            partner = Partner.objects.filter(slug=options["partner"])
            partner = (partner.filter(spot=spot) if spot else partner).first()
            if partner is None:
                raise CommandError(f"No partner with the slug {options['partner']!r}.")
        status_map = partner_status_map(partner)
        summary = Summary()
        on_recorded = None if options["no_postbacks"] else announce
        progress = Progress(count_lines(options["path"]), "Importing conversions", self.stderr)
        try:
            with open(options["path"], newline="", encoding="utf-8-sig") as f:
                for line, row in read_rows(f):
                    import_conversion(
                        line, row, summary, options["event"], spot, status_map, on_recorded
                    )
                    progress.advance()
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise CommandError(f"Could not read {options['path']}: {e}") from e
        progress.finish()
        print_summary(self, summary, "conversion(s) created", "duplicate(s), counted once")
