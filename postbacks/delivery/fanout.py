"""Which deliveries an accepted conversion makes (called in its transaction)."""

import contextlib
import functools
import re
import threading

from django.db import connection, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from crm import macros, together, values
from crm.models import Client, Conversion, Message, conversion_recorded
from crm.rows import columns_of, read_rows
from postbacks import wake
from postbacks.delivery import order, pixels, render
from postbacks.models import Delivery, OutgoingPostback
from tracker import shaping
from tracker.models import LEAD, STATUS_APPROVED, Goal, Pixel, SendsStatuses

# A goal's message template that names these is posted for status changes too.
STATUS_MACROS = re.compile(r"\{(status|previous_status)\}")


def skip_reason(postback, conversion):
    """Why the options of 000/004 keep this postback from sending, or ''."""
    client = conversion.client
    # A locked (partner preset) postback is sent for every event of its goals
    # whatever the other settings (seed 000: "regardless of the other
    # settings"): attribution, first event only, the re-engagement window.
    # The partner counts all of them. Its statuses and required macros are the
    # preset's own and still hold.
    if postback.locked:
        return _missing_macros(postback, conversion)
    if not postback.all_users and not client.attributed:
        return "The client did not come from an ad (send for all users is off)."
    reason = shaping_reason(postback, conversion)
    if reason:
        return reason
    window = postback.reengagement_window
    if window is not None and conversion.created - client.created > window:
        return "The event came after the re-engagement window."
    return _missing_macros(postback, conversion)


def shaping_reason(target, conversion):
    """Why the send mode or the conditions of `target` (an outgoing postback
    or a pixel) keep this event from it, or ''."""
    mode = target.send_mode
    if mode == SendsStatuses.APPROVED_ONLY and conversion.status != STATUS_APPROVED:
        return f"Approved only: this event is {conversion.status}."
    # The postback's older "first event only" box and the mode are one setting.
    first_only = mode == SendsStatuses.FIRST or getattr(target, "first_event_only", False)
    if first_only and not _first_of_goal(conversion):
        return "Not the client's first event of this goal (first event only)."
    return _amount_reason(target, conversion) or _client_reason(target, conversion.client)


def _first_of_goal(conversion):
    earlier = conversion.client.conversions.filter(goal_id=conversion.goal_id)
    kept = together.pending(conversion.client_id, conversion.goal_id)  # a batch's, not written yet
    if any(c.pk != conversion.pk and c.created <= conversion.created for c in kept):
        return False
    return not earlier.exclude(pk=conversion.pk).filter(created__lte=conversion.created).exists()


def _amount_reason(target, conversion):
    amount, low, high = conversion.amount or 0, target.min_amount, target.max_amount
    said = f"The amount {values.money(amount)} {conversion.currency}"
    if low is not None and amount < low:
        return f"{said} is under the minimum {values.money(low)}."
    if high is not None and amount > high:
        return f"{said} is over the maximum {values.money(high)}."
    return ""


def _client_reason(target, client):
    geos = shaping.parse_geos(target.geos)
    if geos and (client.geo or "").upper() not in geos:
        return f"The client's country ({client.geo or 'unknown'}) is not one of {', '.join(geos)}."
    pattern = target.campaign_pattern
    if pattern.strip():
        # The name when the ad gave one (fb_spring_us), else its id.
        named = [v for v in (client.advert_campaign_name, client.advert_campaign_id) if v]
        if not any(shaping.pattern_matches(pattern, v) for v in named):
            campaign = " / ".join(named) or "none"
            return f"The client's campaign ({campaign}) does not match {pattern.strip()!r}."
    return ""


def share_reason(target, conversion):
    """'' when the send share lets this event go, else why not, counting it.

    The counter (per goal, on the target's row, locked) counts each
    conversion once, at its first event that qualifies here; its later
    status or amount changes follow that event: sent when it went, skipped
    when the share skipped it (a receiver never hears of a change of a sale
    it was not told of)."""
    percent = target.send_share
    if percent >= 100 or getattr(target, "locked", False):
        return ""
    followed = _followed(target, conversion)
    if followed is not None:
        return followed
    model = type(target)
    rows = model.objects.select_for_update().filter(pk=target.pk)
    counters = dict(rows.values_list("share_counters", flat=True).first() or {})
    key = str(conversion.goal_id)
    n = int(counters.get(key, 0)) + 1
    counters[key] = n
    model.objects.filter(pk=target.pk).update(share_counters=counters)
    target.share_counters = counters
    return "" if shaping.share_sends(percent, n) else shaping.share_reason(percent, n)


FOLLOWS_SHARE = (
    f"{shaping.SHARE_PREFIX}: this conversion's first event here was skipped by share, "
    "and its changes follow it."
)


def _followed(target, conversion, change=None):
    """For a change: '' when an earlier event of the conversion went to the
    target, the share's reason when the share skipped it, None when none
    did (this is the first that qualifies here, and is counted)."""
    if change is None:
        change = getattr(conversion, "change", None) is not None
    if not change:
        return None
    field = "pixel" if isinstance(target, Pixel) else "postback"
    earlier = Delivery.objects.filter(conversion=conversion, **{field: target.pk})
    went = False
    for status, error in earlier.values_list("status", "last_error"):
        if status == Delivery.SKIPPED and error.startswith(shaping.SHARE_PREFIX):
            return FOLLOWS_SHARE
        went = went or status != Delivery.SKIPPED
    return "" if went else None


def peek_share(target, conversion):
    """The share's answer for an event of `conversion` now, without counting
    it: one more of a conversion it heard of follows what it was told."""
    if target.send_share >= 100 or getattr(target, "locked", False):
        return ""
    followed = _followed(target, conversion, change=True)
    if followed is not None:
        return followed
    n = int((target.share_counters or {}).get(str(conversion.goal_id), 0)) + 1
    if shaping.share_sends(target.send_share, n):
        return ""
    return f"The next event of this goal here: {shaping.share_reason(target.send_share, n)}"


def verdict(postback, conversion):
    """Whether `postback` would send an event of `conversion` now, and why
    not ('' when it would): the preview's answer, from the checks fan-out
    makes (the share's counter is read, not moved)."""
    status = conversion.status
    if not postback.sends(status):
        return f"This postback does not send {status} conversions (send {status} is off)."
    reason = skip_reason(postback, conversion) or peek_share(postback, conversion)
    if reason:
        return reason
    return "" if postback.enabled else "Held: the postback is off; switching it on sends it."


def event_id(conversion):
    """The id of the event being fanned out, the same for all its deliveries
    and across their retries and resends (stored on each): the ad networks
    dedupe on it. '<conversion id>-0' for the conversion's arrival, then one
    more for each status or amount change."""
    if getattr(conversion, "change", None) is None:
        return f"{conversion.pk}-0"
    ids = Delivery.objects.filter(conversion=conversion).exclude(event_id="")
    numbers = [
        int(tail)
        for tail in (i.rpartition("-")[2] for i in ids.values_list("event_id", flat=True))
        if tail.isdigit()
    ]
    return f"{conversion.pk}-{max(numbers, default=0) + 1}"


def _missing_macros(postback, conversion):
    # An empty click id makes a request the receiver cannot match to
    # anything ("subid="): skipped here, with the reason, never sent.
    if not postback.required_macros.strip():
        return ""
    ctx = macros.conversion_context(conversion, attributed=not postback.all_users)
    missing = render.missing_required(postback, ctx)
    return f"{missing}." if missing else ""


@functools.cache
def _postbacks_sql():
    # Raw SQL built once, as the endpoint's reads (postbacks/incoming/process.py, 4.):
    # the ORM's (a join for the goals, DISTINCT, a join with the spot to order
    # by its name) cost 2 ms of CPU per postback. %s: the spot, the goal,
    # whether postbacks limited to no goal count.
    q = connection.ops.quote_name
    link = OutgoingPostback.goals.through._meta
    own, goal = (q(link.get_field(n).column) for n in ("outgoingpostback", "goal"))
    picks = f"SELECT 1 FROM {q(link.db_table)} l WHERE l.{own} = p.id"
    return (
        f"SELECT {columns_of(OutgoingPostback, alias='p')} "
        f"FROM {q(OutgoingPostback._meta.db_table)} p WHERE p.spot_id = %s AND ("
        f"EXISTS ({picks} AND l.{goal} = %s) OR (%s AND NOT EXISTS ({picks}))) "
        "ORDER BY p.name, p.id"
    )


_reading = threading.local()


@contextlib.contextmanager
def batched():
    """Inside it, fan-out works for a batch of decisions (incoming/batches.py),
    which fans out many events of few goals: the postbacks and pixels an
    event goes to are read once per spot, goal and status (nothing fan-out
    changes on them is read from the copies: a share's counter is read from
    its locked row), and the system messages, which nothing in the batch
    reads, are written together at its end, as are the deliveries of new
    conversions (those of a change read the conversion's earlier ones: all
    that wait are written first). End it inside the transaction."""
    if getattr(_reading, "memo", None) is not None:
        yield  # an outer one does it
        return
    _reading.memo, _reading.messages, _reading.deliveries = {}, [], []
    try:
        yield
        flush_deliveries()
        messages = _reading.messages
    finally:
        _reading.memo = _reading.messages = _reading.deliveries = None
    Message.objects.bulk_create(messages)


def flush_deliveries():
    """Write the deliveries a batch holds (batched)."""
    waiting = getattr(_reading, "deliveries", None)
    if waiting:
        Delivery.objects.bulk_create(waiting)
        now = timezone.now()
        # Due already: one look for them all, not one per moment of the batch.
        wake.look_on_commit(
            None if d.next_attempt <= now else d.next_attempt
            for d in waiting
            if d.status == Delivery.PENDING
        )
        waiting.clear()


def batch_mark():
    """Before a row of the batch that may be rolled back to its savepoint: the
    waiting deliveries are written (in the batch's transaction, not the
    savepoint), and batch_forget(mark) drops what the row adds."""
    flush_deliveries()
    return len(getattr(_reading, "messages", None) or ())


def batch_forget(mark):
    messages = getattr(_reading, "messages", None)
    if messages is not None:
        del messages[mark:]
        _reading.deliveries.clear()


def once(key, read):
    memo = getattr(_reading, "memo", None)
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return memo[key]


def read_once(key, model, sql, params):
    return once(key, lambda: read_rows(model, sql, params))


def create_deliveries(conversion):
    """Write the conversion's Delivery rows: its spot's outgoing postbacks for
    the goal (held when switched off), the goal's external postback and the
    spot's pixels that have an event name for the goal, each if it sends the
    conversion's status. A conversion whose status or amount just changed
    (conversion.change) makes deliveries of that change, to the postbacks and
    pixels only. Call inside the conversion's transaction; a loop is told
    once it commits."""
    goal, spot, status = conversion.goal, conversion.spot, conversion.status
    change = getattr(conversion, "change", None)
    now = timezone.now()
    rows = []
    # Postbacks limited to goals, this one among them, or not limited at all;
    # a new lead only to those that pick it (spots that do not want leads
    # send nothing new).
    params = [spot.pk, goal.pk, goal.token != LEAD]
    found = read_once(("postbacks", *params), OutgoingPostback, _postbacks_sql(), params)
    for postback in found:
        if not postback.sends(status):
            continue
        reason = skip_reason(postback, conversion) or share_reason(postback, conversion)
        state = Delivery.PENDING
        if reason:
            state = Delivery.SKIPPED
        elif not postback.enabled:
            # Kept until the postback is switched on again, then sent.
            state, reason = Delivery.HELD, "Held: the postback is off."
        rows.append(
            Delivery(
                postback=postback,
                status=state,
                last_error=reason,
                next_attempt=now + postback.min_delay if postback.min_delay else now,
            )
        )
    if change is None and goal.external_postback.strip():
        rows.append(Delivery(external_goal=goal, next_attempt=now))
    rows += pixel_deliveries(conversion, now)
    event = event_id(conversion) if rows else ""
    for row in rows:
        row.conversion, row.spot, row.event_status = conversion, spot, status
        row.event_id = event
        # The event's own values: sent as they are now, however late it goes out.
        row.event_amount, row.event_currency = conversion.amount, conversion.currency
        row.event_time = now
        if change is not None:
            row.previous_status, row.previous_amount = change
    waiting = getattr(_reading, "deliveries", None)
    if change is None and waiting is not None:
        waiting.extend(rows)  # written with the batch's (batched)
        return rows
    flush_deliveries()  # a change reads the conversion's earlier deliveries
    created = Delivery.objects.bulk_create(rows)
    if change is not None:
        order.supersede_earlier(conversion, created)
    wake.look_on_commit(d.next_attempt for d in created if d.status == Delivery.PENDING)
    return created


def pixel_deliveries(conversion, now):
    """The deliveries of the spot's pixels that have an event name for the
    goal and send the conversion's status; skipped, with why, when the event
    is no new sale to the pixel."""
    goal, status = conversion.goal, conversion.status
    networks = [n for n, _ in Pixel.NETWORKS if getattr(goal, f"{n}_event")]
    if not networks:  # no query for a goal that no ad network hears of
        return []
    key = ("pixels", conversion.spot_id, *networks, status)
    found = once(
        key,
        lambda: list(
            conversion.spot.pixels.filter(
                enabled=True, network__in=networks, **{f"send_{status}": True}
            ).order_by("pk")  # the share locks their rows: always in one order
        ),
    )
    rows = []
    for pixel in found:
        reason = (
            pixel_skip_reason(pixel, conversion)
            or shaping_reason(pixel, conversion)
            or share_reason(pixel, conversion)
        )
        state = Delivery.SKIPPED if reason else Delivery.PENDING
        rows.append(Delivery(pixel=pixel, status=state, last_error=reason, next_attempt=now))
    return rows


def pixel_skip_reason(pixel, conversion):
    """Why a pixel is not told this event, or ''. A pixel hears of a sale once:
    an ad network takes no corrections, so a change after it was told (pending
    approved, an amount mended, approved again after a chargeback) would count
    the sale twice."""
    reason = pixels.not_a_sale(conversion)
    if reason or getattr(conversion, "change", None) is None:
        return reason
    told = Delivery.objects.filter(conversion=conversion, pixel=pixel)
    if told.exclude(status=Delivery.SKIPPED).exists():
        return (
            "The pixel was told of this sale already: an ad network takes no changes, "
            "and another event would count it twice."
        )
    return ""


def post_system_message(conversion):
    """The goal's message in the client's chat: for a new conversion, and for a
    status change when the template speaks of the status."""
    goal, client = conversion.goal, conversion.client
    template = goal.message_template
    if not (client.spot.crm_enabled and template.strip()):
        return None
    if getattr(conversion, "change", None) and not STATUS_MACROS.search(template):
        return None
    text = macros.render(template, macros.conversion_context(conversion))
    message = Message(client=client, kind=Message.SYSTEM, text=text, conversion=conversion)
    gathered = getattr(_reading, "messages", None)
    if gathered is not None:
        gathered.append(message)  # written with the batch's (batched)
    else:
        message.save(force_insert=True)
    return message


def announce(conversion, outcome):
    """What a recorded conversion makes, new ("created") or changed ("updated"):
    its deliveries and its system message. Call in its transaction."""
    if outcome not in ("created", "updated"):
        return []
    deliveries = create_deliveries(conversion)
    post_system_message(conversion)
    return deliveries


_quiet = threading.local()


@contextlib.contextmanager
def no_lead_events():
    """New clients made inside make no lead event: an import back-filling history."""
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = False


@functools.cache
def _lead_goal_sql():
    # Raw SQL, built once: on the click path the ORM's compiling of this
    # query cost more than the rest of what a click does in Python.
    goal, link = Goal._meta.db_table, OutgoingPostback.goals.through._meta.db_table
    # An event name counts only with the spot's pixel of that network on: every
    # lead goal has the standard names, and a spot without pixels wants no leads.
    pixels = f"SELECT 1 FROM {Pixel._meta.db_table} p WHERE p.spot_id = g.spot_id AND p.enabled"
    events = " OR ".join(
        f"(g.{network}_event <> '' AND EXISTS ({pixels} AND p.network = '{network}'))"
        for network, _ in Pixel.NETWORKS
    )
    return (
        f"SELECT {columns_of(Goal, alias='g')} FROM {goal} g "
        "WHERE g.spot_id = %s AND g.token = %s AND ("
        f"g.external_postback <> '' OR {events} OR "
        f"EXISTS (SELECT 1 FROM {link} l WHERE l.goal_id = g.id))"
    )


def lead_goal(spot_id):
    """The spot's lead goal when something sends it (a postback picks it, it has
    an external postback or an event name for a pixel the spot has on), else
    None: one query."""
    return next(iter(read_rows(Goal, _lead_goal_sql(), [spot_id, LEAD])), None)


def new_lead(sender, instance, created=False, raw=False, **kwargs):
    """A new client is the "lead" event of its spot: recorded and sent, in the
    client's transaction, to the targets that pick it (post_save of Client)."""
    if not created or raw or getattr(_quiet, "on", False) or not instance.settled:
        return  # an unsettled click's lead is sent when it is settled (incoming/settling.py)
    lead_event(instance, lead_goal(instance.spot_id))


def lead_event(client, goal):
    """Record the client's lead of `goal` (None: nothing sends leads) and announce it."""
    if goal is None:
        return
    spot = client.spot
    with transaction.atomic(savepoint=False):  # the client's own when it has one
        conversion = Conversion.objects.create(
            spot=spot, client=client, goal=goal, currency=spot.currency
        )
        announce(conversion, "created")


def recorded(sender, conversion, outcome, **kwargs):
    """A conversion a person added or changed (crm.models.conversion_recorded):
    the same events as the endpoint's, in its transaction."""
    announce(conversion, outcome)


def connect():
    post_save.connect(new_lead, sender=Client, dispatch_uid="postbacks_new_lead")
    conversion_recorded.connect(recorded, sender=Conversion, dispatch_uid="postbacks_recorded")


def accept(client, event, **kwargs):
    """Record a conversion and its deliveries in one transaction (what the endpoint does)."""
    with transaction.atomic():
        conversion, outcome = client.record_conversion(event, **kwargs)
        deliveries = announce(conversion, outcome)
    return conversion, outcome, deliveries
