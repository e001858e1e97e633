"""Ready partner integrations: JSON files under tracker/presets/, applied to a spot.

A preset names the partner's click-id parameter and macro, its status words,
and its postback configurations; applying it makes a Partner with its
PartnerPostbacks (and a registration link when given the partner's URL).
A preset's outgoing postback lives in the postbacks app, which listens to
`preset_applied`.
"""

import json
from pathlib import Path

from django.db import transaction
from django.dispatch import Signal
from django.utils.text import slugify

from tracker.models import Partner, PartnerPostback, PartnerPreset, RegistrationLink

PRESET_DIR = Path(__file__).resolve().parent / "presets"

# Sent inside the transaction of apply_preset: partner, preset, outgoing_base.
preset_applied = Signal()


def preset_files():
    return sorted(PRESET_DIR.glob("*.json"))


def load_presets(directory=None):
    """Create or update a PartnerPreset per JSON file; returns the presets."""
    files = sorted(Path(directory).glob("*.json")) if directory else preset_files()
    loaded = []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        for key in ("slug", "name", "click_id_param", "postbacks"):
            if key not in data:
                raise ValueError(f"{path.name}: the preset has no {key!r}.")
        preset, _ = PartnerPreset.objects.update_or_create(
            slug=data["slug"],
            defaults={
                "name": data["name"],
                "description": data.get("description", ""),
                "data": data,
            },
        )
        loaded.append(preset)
    return loaded


def unique_slug(spot, base):
    slug, n = base, 2
    while Partner.objects.filter(spot=spot, slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def apply_preset(preset, spot, click_id_param="", registration_url="", outgoing_base=""):
    """Make the preset's partner on `spot`; returns the Partner."""
    data = preset.data
    param = click_id_param.strip() or data["click_id_param"]
    macro = data.get("click_id_macro", "")
    if click_id_param.strip() and param != data["click_id_param"]:
        macro = "{" + param + "}"  # a chosen parameter comes back under its own name
    with transaction.atomic():
        partner = Partner.objects.create(
            spot=spot,
            name=data["name"],
            slug=unique_slug(spot, slugify(data["slug"])),
            click_id_param=param,
            click_id_macro=macro,
            status_map=data.get("status_map", ""),
            plain_answer=data.get("plain_answer", ""),
            preset=preset.slug,
        )
        for order, pb in enumerate(data["postbacks"]):
            PartnerPostback.objects.create(
                partner=partner,
                name=pb["name"],
                event=pb["event"],
                amount=pb.get("amount", ""),
                currency=pb.get("currency", ""),
                tid=pb.get("tid", ""),
                status=pb.get("status", ""),
                fields="\n".join(f"fields.{k}={v}" for k, v in pb.get("fields", {}).items()),
                order=order,
            )
        if registration_url.strip():
            RegistrationLink.objects.create(
                spot=spot, partner=partner, name="Registration", base_url=registration_url.strip()
            )
        preset_applied.send(
            sender=PartnerPreset, partner=partner, preset=preset, outgoing_base=outgoing_base
        )
    return partner
