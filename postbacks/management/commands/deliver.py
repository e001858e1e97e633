import contextlib

from django.core.management.base import BaseCommand

from postbacks.delivery.batch import send_due
from postbacks.loops import embedded


class Command(BaseCommand):
    help = "Send due postbacks in this process, without Redis (the embedded loop)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Send what is due, then exit.")

    def handle(self, *args, **options):
        if options["once"]:
            self.stdout.write(f"Sent {send_due()} deliveries.")
            return
        self.stdout.write("Delivering postbacks (Ctrl-C stops).")
        with contextlib.suppress(KeyboardInterrupt):
            embedded.run_forever()
