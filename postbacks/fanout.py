"""Which deliveries an accepted conversion makes (called in its transaction)."""

from postbacks.models import Delivery


def create_deliveries(conversion):
    """Write the conversion's Delivery rows: its spot's outgoing postbacks for
    the goal, the goal's external postback and the spot's pixels that have an
    event name for the goal. Call inside the conversion's transaction."""
    goal, spot = conversion.goal, conversion.spot
    rows = []
    for postback in spot.outgoing_postbacks.filter(enabled=True).prefetch_related("goals"):
        goals = list(postback.goals.all())
        if not goals or goal in goals:
            rows.append(Delivery(conversion=conversion, spot=spot, postback=postback))
    if goal.external_postback.strip():
        rows.append(Delivery(conversion=conversion, spot=spot, external_goal=goal))
    for pixel in spot.pixels.filter(enabled=True):
        if getattr(goal, f"{pixel.network}_event"):
            rows.append(Delivery(conversion=conversion, spot=spot, pixel=pixel))
    return Delivery.objects.bulk_create(rows)
