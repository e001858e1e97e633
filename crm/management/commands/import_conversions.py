"""Import conversions from a tracker's CSV: subid,payout,tid,status."""

from django.core.management.base import BaseCommand, CommandError

from crm.imports import Summary, import_conversion, partner_status_map, read_rows
from tracker.models import Partner, Spot
from tracker.progress import Progress


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return max(sum(1 for _ in f) - 1, 0)
    except OSError as e:
        raise CommandError(f"Could not read {path}: {e}") from e


def print_summary(command, summary, created_label, duplicate_label):
    out = command.stdout
    out.write(command.style.SUCCESS(f"{summary.created} {created_label}."))
    if summary.updated:
        out.write(f"{summary.updated} updated (same tid, new status or amount).")
    if summary.duplicate:
        out.write(f"{summary.duplicate} {duplicate_label}.")
    if summary.rejected:
        out.write(command.style.WARNING(f"{len(summary.rejected)} row(s) rejected:"))
        for line, reason in summary.rejected:
            out.write(f"  line {line}: {reason}")


class Command(BaseCommand):
    help = (
        "Import conversions from CSV with the columns subid,payout,tid,status (optional: "
        "currency, event). subid is our click id or the client's cl_id. Rows go through "
        "the same rules as postbacks (dep/redep, a repeated tid updates); no postbacks "
        "are sent for imported history."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--event", default="sale", help="Event word for rows without one (default: sale)."
        )
        parser.add_argument("--spot", help="Limit cl_id matching to this spot (its slug).")
        parser.add_argument("--partner", help="Map statuses with this partner's status map.")

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
        progress = Progress(count_lines(options["path"]), "Importing conversions", self.stderr)
        try:
            with open(options["path"], newline="", encoding="utf-8-sig") as f:
                for line, row in read_rows(f):
                    import_conversion(line, row, summary, options["event"], spot, status_map)
                    progress.advance()
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise CommandError(f"Could not read {options['path']}: {e}") from e
        progress.finish()
        print_summary(self, summary, "conversion(s) created", "duplicate(s), counted once")
