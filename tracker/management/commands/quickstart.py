"""Set up a local copy and serve it: migrate, make a first admin, runserver."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand

from tracker import serving


def local_address(addrport):
    """Where this machine reaches runserver's `addrport` ("8101", "0.0.0.0:8101",
    "[::]:8101", "127.0.0.1:8101"): the demo's postback goes there."""
    host, _, port = addrport.rpartition(":")
    host = host or "127.0.0.1"
    if host == "0.0.0.0":  # every interface: loopback is one of them
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{host}:{port}"


class Command(BaseCommand):
    help = "Migrate, create the first admin user (printing its login) and serve the admin."

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--no-serve", action="store_true", help="Set up only; do not start the server."
        )
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Also load demo data: a spot with clients, conversions and postbacks.",
        )

    def handle(self, *args, **options):
        if not options["no_serve"]:
            # The delivery loop of this process waits for the server: the
            # demo's postbacks go to it (tracker/serving.py).
            serving.setting_up.send(sender=type(self))
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(self.style.SUCCESS("Database ready."))
        self.create_admin(options["username"])
        call_command("load_presets", verbosity=0, stdout=self.stdout._out)
        if options["demo"]:
            receiver = f"http://{local_address(options['addrport'])}/demo/receiver"
            call_command("load_demo", receiver=receiver, stdout=self.stdout._out)
        else:
            self.stdout.write("Want sample data? Run it again with --demo.")
        if options["no_serve"]:
            return
        self.stdout.write(f"Open http://{options['addrport']}/admin/ (Ctrl-C stops the server).")
        # No autoreloader: it would run this command (and its setup) a second time.
        call_command(runserver(), options["addrport"], use_reloader=False)

    def create_admin(self, username):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                "An admin user exists already; log in with it "
                f"(forgot the password? python manage.py changepassword {username})."
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            self.style.SUCCESS(f"Admin user created. Log in as {username} / {password}")
        )


def runserver():
    """The runserver command in use (staticfiles' own, with DEBUG), telling
    tracker.serving.listening once its socket listens."""
    base = type(load_command_class(get_commands()["runserver"], "runserver"))

    class Runserver(base):
        def on_bind(self, server_port):
            super().on_bind(server_port)
            serving.listening.send(sender=Command)

    return Runserver()
