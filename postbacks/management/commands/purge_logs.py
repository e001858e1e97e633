"""Remove incoming postback rows and delivery attempts older than their keep settings."""

from django.conf import settings
from django.core.management.base import BaseCommand

from postbacks.loops import retention
from tracker.progress import Progress


class Command(BaseCommand):
    help = (
        "Remove incoming postbacks older than INCOMING_KEEP_DAYS and delivery attempts older "
        "than ATTEMPTS_KEEP_DAYS, keeping unmatched postbacks within the look-back window and "
        "the attempts of unfinished deliveries."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be removed; remove nothing."
        )

    def handle(self, *args, **options):
        logs = [
            ("incoming postbacks", retention.purgeable_incoming(), settings.INCOMING_KEEP_DAYS),
            ("delivery attempts", retention.purgeable_attempts(), settings.ATTEMPTS_KEEP_DAYS),
        ]
        for label, rows, days in logs:
            if not days:
                self.stdout.write(f"{label}: kept forever (keep setting is 0).")
                continue
            count = rows.count()
            if options["dry_run"]:
                self.stdout.write(f"{label}: {count} older than {days} days would be removed.")
                continue
            progress = Progress(count, f"Removing {label}", self.stderr)
            removed = retention.purge(rows, progress)
            progress.finish()
            self.stdout.write(self.style.SUCCESS(f"{label}: {removed} removed."))
