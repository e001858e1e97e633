"""A preset's outgoing postback: created, locked, when the preset is applied."""

from postbacks.models import OutgoingPostback


def create_locked_outgoing(sender, partner, preset, outgoing_base="", **kwargs):
    spec = preset.data.get("outgoing")
    if not spec or not outgoing_base:
        return None
    postback = OutgoingPostback.objects.create(
        spot=partner.spot,
        partner=partner,
        name=spec["name"],
        url=outgoing_base.rstrip("/") + spec["path"],
        locked=bool(spec.get("locked", True)),
        all_users=True,  # what the admin shows; a locked one is sent for all anyway
    )
    tokens = spec.get("goals") or []
    if tokens:
        postback.goals.set(partner.spot.goals.filter(token__in=tokens))
    return postback
