"""Pull the daily spend of the admin's ad accounts from the ad networks' reporting APIs."""

import datetime

from django.core.management.base import BaseCommand, CommandError

from crm import spend_api
from tracker.models import AdAccount
from tracker.progress import Progress


def day(text):
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as e:
        raise CommandError(f"{text!r} is not a day: write it as 2026-12-04.") from e


class Command(BaseCommand):
    help = (
        "Pull the daily spend of the enabled ad accounts (admin: Ad accounts) from the Facebook "
        "Marketing API and the TikTok Business API, and store it per day: a day pulled again "
        "replaces that day's figures of the account. By default the last SPEND_IMPORT_DAYS "
        "days up to today, as the workers do every SPEND_IMPORT_INTERVAL seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, help="The last N days up to today.")
        parser.add_argument("--since", type=day, help="First day, YYYY-MM-DD.")
        parser.add_argument("--until", type=day, help="Last day, YYYY-MM-DD (default: today).")
        parser.add_argument(
            "--account",
            action="append",
            help="Only this ad account (its id as in the admin, or its row number); repeatable.",
        )

    def handle(self, *args, **options):
        since, until = self.range(options)
        accounts = self.accounts(options["account"])
        failed = sum(not self.pull(account, since, until) for account in accounts)
        if failed:
            raise CommandError(f"{failed} of {len(accounts)} ad account(s) failed; see above.")
        self.stdout.write(
            self.style.SUCCESS(f"Spend of {len(accounts)} ad account(s), {since} to {until}.")
        )

    def pull(self, account, since, until):
        """One account's days, with a progress bar per account; False when it failed."""
        progress = Progress((until - since).days + 1, f"{account} ({account.spot})", self.stderr)
        try:
            stored = spend_api.import_account(
                account, since, until, progress=lambda *a: progress.advance()
            )
        except spend_api.ApiError as e:
            progress.finish()
            self.stdout.write(self.style.ERROR(f"{account}: {e}"))
            return False
        progress.finish()
        self.stdout.write(
            f"{account}: {sum(stored.values())} spend row(s) over {len(stored)} day(s)."
        )
        return True

    def range(self, options):
        if options["days"] is not None and (options["since"] or options["until"]):
            raise CommandError("Give --days or --since/--until, not both.")
        if options["days"] is not None and options["days"] < 1:
            raise CommandError("--days must be 1 or more.")
        if not options["since"]:
            if options["until"]:
                raise CommandError("--until needs --since.")
            return spend_api.recent_range(options["days"])
        since, until = options["since"], options["until"] or spend_api.recent_range(1)[1]
        if until < since:
            raise CommandError(f"--until ({until}) is before --since ({since}).")
        return since, until

    def accounts(self, wanted):
        accounts = spend_api.usable()
        if not wanted:
            found = list(accounts)
            if not found:
                raise CommandError(
                    "No enabled ad account with an access token: add one in the admin "
                    "(Ad accounts)."
                )
            return found
        found = []
        for text in wanted:
            text = text.strip()
            ids = {text, spend_api.facebook_id(text), f"act_{spend_api.facebook_id(text)}"}
            match = list(AdAccount.objects.select_related("spot").filter(account_id__in=ids))
            if not match and text.isdigit():
                match = list(AdAccount.objects.select_related("spot").filter(pk=int(text)))
            if not match:
                raise CommandError(f"No ad account {text!r}.")
            found += [a for a in match if a not in found]
        return found
