"""A preset's outgoing postback: created, locked, when the preset is applied."""

from postbacks.models import OutgoingPostback
from tracker.signing import new_secret
from tracker.status_words import STATUSES


def create_locked_outgoing(sender, partner, preset, outgoing_base="", **kwargs):
    spec = preset.data.get("outgoing")
    if not spec or not outgoing_base:
        return None
    sends = spec.get("statuses", STATUSES)
    postback = OutgoingPostback.objects.create(
        spot=partner.spot,
        partner=partner,
        name=spec["name"],
        url=outgoing_base.rstrip("/") + spec["path"],
        # {status} in the receiver's words, and the macros without which the
        # receiver cannot match the event (load_presets checked both).
        status_words=spec.get("status_words", ""),
        required_macros=spec.get("required_macros", ""),
        locked=bool(spec.get("locked", True)),
        # The team's own tracker can check who sent it (Standard Webhooks); the
        # secret is shown once, on the page after the preset is applied.
        signed=bool(spec.get("signed", False)),
        signing_secret=new_secret() if spec.get("signed") else "",
        all_users=True,  # what the admin shows; a locked one is sent for all anyway
        **{f"send_{status}": status in sends for status in STATUSES},
    )
    if postback.signing_secret:
        partner.shown_once = [
            *getattr(partner, "shown_once", []),
            f"{postback} signs its requests. Its signing secret, shown only now: "
            f"{postback.signing_secret} Give it to your tracker to verify webhook-signature.",
        ]
    tokens = spec.get("goals") or []
    if tokens:
        postback.goals.set(partner.spot.goals.filter(token__in=tokens))
    return postback
