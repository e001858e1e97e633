"""Which deliveries an accepted conversion makes (called in its transaction)."""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from postbacks import queue
from postbacks.models import Delivery
from tracker.models import Pixel


def skip_reason(postback, conversion):
    """Why the options of 000/004 keep this postback from sending, or ''."""
    client = conversion.client
    # A locked (partner preset) postback is sent for every event of its goals
    # whatever the attribution (seed 000): the partner counts all of them.
    if not (postback.all_users or postback.locked) and not client.attributed:
        return "The client did not come from an ad (send for all users is off)."
    if postback.first_event_only:
        earlier = client.conversions.filter(goal_id=conversion.goal_id).exclude(pk=conversion.pk)
        if earlier.filter(created__lte=conversion.created).exists():
            return "Not the client's first event of this goal (first event only)."
    window = postback.reengagement_window
    if window is not None and conversion.created - client.created > window:
        return "The event came after the re-engagement window."
    return ""


def create_deliveries(conversion):
    """Write the conversion's Delivery rows: its spot's outgoing postbacks for
    the goal (held when switched off), the goal's external postback and the
    spot's pixels that have an event name for the goal. Call inside the
    conversion's transaction; a loop is told once it commits."""
    goal, spot = conversion.goal, conversion.spot
    now = timezone.now()
    rows = []
    # Postbacks limited to goals, this one among them, or not limited at all.
    postbacks = spot.outgoing_postbacks.filter(Q(goals=goal) | Q(goals=None)).distinct()
    for postback in postbacks:
        reason = skip_reason(postback, conversion)
        status = Delivery.PENDING
        if reason:
            status = Delivery.SKIPPED
        elif not postback.enabled:
            # Kept until the postback is switched on again, then sent.
            status, reason = Delivery.HELD, "Held: the postback is off."
        rows.append(
            Delivery(
                conversion=conversion,
                spot=spot,
                postback=postback,
                status=status,
                last_error=reason,
                next_attempt=now + postback.min_delay if postback.min_delay else now,
            )
        )
    if goal.external_postback.strip():
        rows.append(
            Delivery(conversion=conversion, spot=spot, external_goal=goal, next_attempt=now)
        )
    networks = [n for n, _ in Pixel.NETWORKS if getattr(goal, f"{n}_event")]
    if networks:  # no query for a goal that no ad network hears of
        for pixel in spot.pixels.filter(enabled=True, network__in=networks):
            rows.append(Delivery(conversion=conversion, spot=spot, pixel=pixel, next_attempt=now))
    created = Delivery.objects.bulk_create(rows)
    queue.look_on_commit(d.next_attempt for d in created if d.status == Delivery.PENDING)
    return created


def accept(client, event, **kwargs):
    """Record a conversion and its deliveries in one transaction (what the endpoint does)."""
    with transaction.atomic():
        conversion, outcome = client.record_conversion(event, **kwargs)
        deliveries = create_deliveries(conversion) if outcome == "created" else []
    return conversion, outcome, deliveries
