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

from tracker.macros import is_known
from tracker.models import Partner, PartnerPostback, PartnerPreset, RegistrationLink
from tracker.status_words import (
    STATUSES,
    contradicting_words,
    literal_statuses,
    parse_status_words,
)

PRESET_DIR = Path(__file__).resolve().parent / "presets"

# Sent inside the transaction of apply_preset: partner, preset, outgoing_base.
# A receiver may add texts to `partner.shown_once` (a secret it made): the
# admin shows them on the page after, and never again.
preset_applied = Signal()


def preset_files():
    return sorted(PRESET_DIR.glob("*.json"))


def load_presets(directory=None):
    """Create or update a PartnerPreset per JSON file; returns the presets.

    Every file is read and checked first: one refused file loads none."""
    files = sorted(Path(directory).glob("*.json")) if directory else preset_files()
    datas = [read_preset(path) for path in files]
    loaded = []
    with transaction.atomic():
        for data in datas:
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


def read_preset(path):
    """The preset of one JSON file; raises ValueError naming the file and what is wrong."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("slug", "name", "click_id_param", "postbacks"):
        if key not in data:
            raise ValueError(f"{path.name}: the preset has no {key!r}.")
    if data.get("outgoing"):
        try:
            check_outgoing(data["outgoing"])
        except ValueError as e:
            raise ValueError(f"{path.name}: the outgoing postback {e}") from e
    return data


def check_outgoing(spec):
    """Refuse an outgoing postback whose templates say something other than
    the events it sends: a fixed status word (status=sale) that a pending or
    rejected conversion would also carry, a {status} without the receiver's
    word for each status sent, a status word of another status (rejected = sale)."""
    if not spec.get("name") or not spec.get("path"):
        raise ValueError("needs a 'name' and a 'path'.")
    sends = spec.get("statuses", STATUSES)
    unknown = [s for s in sends if s not in STATUSES]
    if unknown or not sends:
        raise ValueError(f"'statuses' must list some of {', '.join(STATUSES)}, got {sends}.")
    templates = {"path": spec["path"], "body": spec.get("body", "")}
    for where, template in templates.items():
        for key, value in literal_statuses(template):
            raise ValueError(
                f"writes {key}={value} as a fixed word in its {where}: every event it sends "
                f"({', '.join(sends)}) would reach the receiver as {value!r}, a chargeback too. "
                f"Write {key}={{status}} and give the receiver's words in 'status_words' "
                f"(e.g. 'approved = {value}')."
            )
        for key, value, meaning in contradicting_words(template, sends):
            raise ValueError(
                f"writes {key}={value} ({meaning}) in its {where}, but it also sends "
                f"{', '.join(s for s in sends if s != meaning)} conversions."
            )
    try:
        words = parse_status_words(spec.get("status_words", ""))
    except ValueError as e:
        raise ValueError(f"has unusable 'status_words': {e}") from e
    if any("{status}" in t for t in templates.values()):
        missing = [s for s in sends if s not in words]
        if missing:
            raise ValueError(
                f"sends {{status}} but 'status_words' gives no receiver's word for "
                f"{', '.join(missing)}."
            )
    if not isinstance(spec.get("signed", False), bool):
        raise ValueError("'signed' must be true or false.")
    required = [n.strip().strip("{}") for n in spec.get("required_macros", "").split(",")]
    bad = [n for n in required if n and not is_known(n)]
    if bad:
        raise ValueError(f"'required_macros' names unknown macros: {', '.join(bad)}.")


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
