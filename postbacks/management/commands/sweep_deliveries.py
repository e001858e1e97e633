from django.core.management.base import BaseCommand

from postbacks.delivery.batch import send_due


class Command(BaseCommand):
    help = (
        "Send every due delivery that is not in flight from this process, needing no "
        "Redis (what each worker's sweeper does every POSTBACKS_SWEEP_INTERVAL)."
    )

    def handle(self, *args, **options):
        self.stdout.write(f"Sent {send_due()} due deliveries.")
