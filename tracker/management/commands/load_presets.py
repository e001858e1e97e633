"""Load the ready partner integrations shipped in tracker/presets/."""

import json

from django.core.management.base import BaseCommand, CommandError

from tracker.presets import load_presets


class Command(BaseCommand):
    help = "Create or update the partner presets from tracker/presets/*.json (or --dir)."

    def add_arguments(self, parser):
        parser.add_argument("--dir", help="Read the JSON files of this folder instead.")

    def handle(self, *args, **options):
        try:
            presets = load_presets(options["dir"])
        except (ValueError, json.JSONDecodeError, OSError) as e:
            raise CommandError(f"Could not load the presets: {e}") from e
        if options["verbosity"] < 1:
            return
        for preset in presets:
            self.stdout.write(f"  {preset.slug}: {preset.name}")
        self.stdout.write(self.style.SUCCESS(f"{len(presets)} partner preset(s) loaded."))
