from django.core.management.base import BaseCommand

from postbacks import queue


class Command(BaseCommand):
    help = "Re-enqueue every due delivery that is not in flight (after a Redis outage)."

    def handle(self, *args, **options):
        count = queue.sweep()
        scheduled = queue.ensure_sweep_scheduled()
        self.stdout.write(f"Enqueued {count} due deliveries.")
        if scheduled:
            self.stdout.write("Scheduled the periodic sweep.")
