"""Delivering one Delivery: claim, build, send, log, then retry or finish.

The design constraints are those of the wing (postbacks/delivery/__init__.py).
"""

import datetime
import email.utils
import logging
import random
import time

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from crm.macros import conversion_context, sample_context
from postbacks import wake
from postbacks.delivery import order, pixels, render, sender, signing
from postbacks.models import Delivery, DeliveryAttempt, OutgoingPostback
from tracker import metrics
from tracker.retry import retried_until

log = logging.getLogger(__name__)

# Seconds to wait after the n-th failed attempt (index n-1), before jitter:
# a minute, 5 and 15 minutes, then hours; about a day and a half in all before
# the tenth attempt gives up (POSTBACKS_MAX_ATTEMPTS). The last delay repeats
# when more attempts are allowed.
RETRY_DELAYS = (60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 16 * 3600)
# Each delay is stretched or shrunk by up to this fraction, so deliveries that
# failed together (a receiver outage) do not all come back in the same second.
JITTER = 0.2
# A target without a timeout of its own (a pixel, a goal's external postback).
DEFAULT_TIMEOUT = 10.0


def now():
    return timezone.now()


def scaled(seconds):
    return datetime.timedelta(seconds=seconds * settings.POSTBACKS_DELAY_SCALE)


def retry_delay(attempts, retry_after=None):
    """How long to wait after `attempts` failed attempts."""
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    delay = scaled(base * random.uniform(1 - JITTER, 1 + JITTER))
    if retry_after is not None:
        # The receiver's own wish wins over our schedule, within bounds.
        # At least a second, so "Retry-After: 0" cannot make a busy loop.
        delay = scaled(max(1, min(retry_after, settings.POSTBACKS_RETRY_AFTER_MAX)))
    return delay


def parse_retry_after(value):
    """Seconds from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, int((when - now()).total_seconds()))


def due_q(at=None):
    """Deliveries a worker may take now: pending and due, or a claim that expired."""
    at = at or now()
    pending = Q(status=Delivery.PENDING) & (Q(next_attempt__isnull=True) | Q(next_attempt__lte=at))
    abandoned = Q(status=Delivery.SENDING, claimed_until__lt=at)
    return pending | abandoned


def claim(delivery_id):
    """Take the delivery for this worker; True when this call got it."""
    at = now()
    lease = datetime.timedelta(seconds=settings.POSTBACKS_CLAIM_SECONDS)
    with transaction.atomic():
        ready = Delivery.objects.filter(due_q(at), order.ready_q(), pk=delivery_id)
        changed = ready.update(status=Delivery.SENDING, claimed_until=at + lease)
    return changed == 1


def reported(delivery):
    """The conversion as `delivery` reports it: its event's own status, amount,
    currency and time, fixed when the event happened, and, for a change, what
    they were before (crm.macros and pixels read these). A delivery made before
    the values were kept reports the conversion's amount and currency."""
    conversion = delivery.conversion
    own = {
        "status": delivery.event_status,
        "amount": delivery.event_amount,
        "currency": delivery.event_currency,
    }
    own = {k: v for k, v in own.items() if v not in (None, "") and v != getattr(conversion, k)}
    if not (own or delivery.previous_status or delivery.event_time or delivery.event_id):
        return conversion  # as it is: no copy
    conversion = shallow_copy(conversion)
    conversion.event_id = delivery.event_id  # the networks' id of this event (pixels)
    for name, value in own.items():
        setattr(conversion, name, value)
    if delivery.previous_status:
        conversion.change = (delivery.previous_status, delivery.previous_amount)
    conversion.event_time = delivery.event_time
    return conversion


def shallow_copy(instance):
    """A copy of a model instance sharing its values and related objects, as
    copy.copy makes, without Model.__reduce__'s pickling path (a tenth of
    the CPU of a pixel's batch of a thousand events)."""
    new = object.__new__(type(instance))
    new.__dict__.update(instance.__dict__)
    new._state = object.__new__(type(instance._state))
    new._state.__dict__.update(instance._state.__dict__)
    new._state.fields_cache = dict(instance._state.fields_cache)
    return new


def build_request(delivery):
    """The exact request of a delivery, from its target's configuration."""
    conversion = reported(delivery)
    if delivery.postback_id:
        pb = delivery.postback
        return render.build(pb, conversion_context(conversion, attributed=not pb.all_users))
    if delivery.pixel_id:
        return pixels.build(delivery.pixel, conversion, delivery.pk)
    if delivery.external_goal_id:
        ctx = conversion_context(conversion)
        return render.build_plain_url(delivery.external_goal.external_postback, ctx)
    raise LookupError("The target of this delivery was deleted.")


def deliver(delivery_id):
    """Claim and send one delivery. Returns its status afterwards, or None if not ours.

    What a job does where no delivery loop runs; the loops send in batches (batch.py)."""
    if not claim(delivery_id):
        return None
    delivery = Delivery.objects.select_related(
        "conversion__client__spot", "conversion__goal", "postback", "pixel", "external_goal"
    ).get(pk=delivery_id)
    pb = delivery.postback
    if pb is not None and not pb.enabled:
        return hold(delivery, pb)
    try:
        req = build_request(delivery)
    except Exception as e:  # a broken template must not kill the worker
        log.exception("Cannot build delivery %s", delivery_id)
        return finish(delivery, Delivery.FAILED, f"Cannot build the request: {e}")
    if pb is not None and pb.max_rps:
        slot = reserve_slot(pb)
        if slot is not None:
            return defer([delivery.pk], slot)
    result = send(req, pb, delivery.pk)
    ok, reason = sender.judge(result, pb)
    metrics.delivered(delivery, result, ok)
    return record_outcome(delivery, req, result, ok, reason)


def record_outcome(delivery, req, result, ok, reason):
    """Log the attempt of a send that happened and end or reschedule its delivery:
    one transaction, run again on a new connection when the database was lost
    or locked, for as long as the claim lasts (no other sender can take the
    delivery before). Then the error goes up, logged with the delivery's id."""
    numbers = []  # counted once: a run after a commit whose answer was lost must not count its own

    def write():
        again = bool(numbers)
        if not again:
            numbers.append(delivery.attempt_log.count() + 1)
        return _outcome(delivery, req, result, ok, reason, numbers[0], again)

    try:
        return retried_until(lease_end([delivery.claimed_until]), write)
    except DatabaseError:
        log.error("The outcome of delivery %s could not be recorded: its claim lapsed", delivery.pk)
        raise


def _outcome(delivery, req, result, ok, reason, number, again):
    pb = delivery.postback
    if delivery.pk not in holding({delivery.pk: delivery.claimed_until}, again):
        # Its claim lapsed and another sender has it, or an earlier run did commit.
        if not logged({delivery.pk: number}):
            record_attempt(delivery, req, result, ok, reason, number=number)
        return None
    record_attempt(delivery, req, result, ok, reason, number=number)
    if ok:
        if pb is not None and pb.consecutive_failures:
            OutgoingPostback.objects.filter(pk=pb.pk).update(consecutive_failures=0)
        return finish(delivery, Delivery.SUCCESS, "", attempts=delivery.attempts + 1, result=result)
    if pb is not None:
        note_failure(pb, reason)
    return retry_or_fail(delivery, result, reason)


def lease_end(claims):
    """The time.monotonic() at which the last of these claims (their claimed_until) lapses."""
    at = now()
    left = max(((c - at).total_seconds() for c in claims if c is not None), default=0.0)
    return time.monotonic() + max(0.0, left)


def holding(leases, again):
    """still_held, without its statement in the first run of a write within
    every claim: until it lapses, a claim is its sender's alone. A run after
    one that failed asks: that one may have committed, only its answer lost."""
    at = now()
    if not again and all(until is not None and until > at for until in leases.values()):
        return set(leases)
    return still_held(leases)


def still_held(leases):
    """Of {delivery id: the claimed_until its sender set}, the ids whose claim is
    still that one, locked until the transaction ends (on SQLite its IMMEDIATE
    transaction locks them). A delivery whose claim lapsed and was taken by
    another sender is that sender's to record; one recorded already is done."""
    if not leases:
        return set()
    by_lease = {}
    for pk, until in leases.items():
        by_lease.setdefault(until, []).append(pk)
    ops, pk_field = connection.ops, Delivery._meta.pk
    terms, params = [], [Delivery.SENDING]
    for until, ids in by_lease.items():
        terms.append(f"(claimed_until = %s AND id IN ({', '.join(['%s'] * len(ids))}))")
        keys = [pk_field.get_db_prep_value(pk, connection) for pk in sorted(ids)]
        params += [ops.adapt_datetimefield_value(until), *keys]
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    table = ops.quote_name(Delivery._meta.db_table)
    sql = f"SELECT id FROM {table} WHERE status = %s AND ({' OR '.join(terms)}){lock}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {pk_field.to_python(row[0]) for row in cursor.fetchall()}


def logged(numbers):
    """Of {delivery id: attempt number}, the ids whose attempt of that number is logged."""
    if not numbers:
        return set()
    field = DeliveryAttempt._meta.get_field("delivery")
    q = connection.ops.quote_name
    terms = " OR ".join([f"({q(field.column)} = %s AND number = %s)"] * len(numbers))
    key = field.target_field
    params = [
        v
        for pk, number in sorted(numbers.items())
        for v in (key.get_db_prep_value(pk, connection), number)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {q(field.column)} FROM {q(DeliveryAttempt._meta.db_table)} WHERE {terms}",
            params,
        )
        return {key.to_python(row[0]) for row in cursor.fetchall()}


def attempt_timeout(pb):
    """Seconds one attempt may take in all: the postback's own, never over the bound."""
    timeout = pb.timeout if pb is not None else DEFAULT_TIMEOUT
    return max(0.1, min(timeout, settings.POSTBACKS_MAX_TIMEOUT))


def send(req, pb, delivery_id=None):
    try:
        signing.apply(req, pb, delivery_id)  # a signed postback's headers, stamped now
        return sender.send(req, attempt_timeout(pb), delivery_id=delivery_id)
    except Exception as e:  # sender.send does not raise; if it ever does, the attempt is logged
        log.exception("Sending delivery %s failed", delivery_id)
        return sender.Result(error_class=type(e).__name__, error=str(e)[:2000])


def record_attempt(delivery, req, result, ok, reason, test_of=None, user=None, number=None):
    if number is None:
        number = (delivery.attempt_log.count() + 1) if delivery else 1
    row = DeliveryAttempt(
        **attempt_values(delivery, req, result, ok, reason, number, test_of, user)
    )
    row.save()
    return row


def attempt_values(delivery, req, result, ok, reason, number, test_of=None, user=None):
    """{field: value} of the DeliveryAttempt of one send."""
    return {
        "delivery": delivery,
        "postback": test_of,
        "number": number,
        "test": test_of is not None,
        "method": req.method,
        "url": req.url_text(),
        "request_headers": req.headers_text(),
        "request_body": req.body_text(),
        "response_status": result.status,
        "response_headers": result.headers,
        "response_body": result.body,
        "duration_ms": result.duration_ms,
        "error_class": result.error_class,
        "error": result.error or reason,
        "success": ok,
        "sent_by": user,
    }


def insert_attempts(sends):
    """Insert the attempts of a batch's sends, [(delivery, req, result, ok, reason, number)],
    in as few statements as the database allows: bulk_create's per-field
    preparation costs more than the send itself at this rate, and these values
    need none (text, numbers, booleans; the foreign keys their ids). A pixel's
    batch writes a thousand at once: one INSERT per row through executemany
    was a third of its time on PostgreSQL, so there it is one COPY, and SQLite
    takes many rows per INSERT."""
    if not sends:
        return
    fields = [f for f in DeliveryAttempt._meta.concrete_fields if f.name != "id"]
    created = connection.ops.adapt_datetimefield_value(now())
    # Foreign keys: their ids, as stored (a delivery's is a UUID).
    keys = [(f.name, f) for f in fields if f.name in ("delivery", "postback", "sent_by")]
    rows = []
    for send in sends:
        values = attempt_values(*send)
        for name, key in keys:
            values[name] = key.get_db_prep_save(getattr(values[name], "pk", None), connection)
        values["created"] = created
        rows.append([values[f.name] for f in fields])
    q = connection.ops.quote_name
    table, columns = q(DeliveryAttempt._meta.db_table), ", ".join(q(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: psycopg's multi-row INSERT turns 16,000 markers into its own
            # anew for each statement, or escapes arrays' texts in Python, each
            # costing more than the insert; its COPY formats the rows in C.
            # Past Django's cursor: its errors are told as Django's, which the retries know.
            sql = f"COPY {table} ({columns}) FROM STDIN"
            with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = f"({', '.join(['%s'] * len(fields))})"
        # As many rows as the database takes parameters (SQLite: 999).
        per = max(1, (connection.features.max_query_params or 999) // len(fields))
        for i in range(0, len(rows), per):
            chunk = rows[i : i + per]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([marks] * len(chunk))}",
                [v for row in chunk for v in row],
            )


def hold(delivery, pb):
    """Keep the delivery of a switched-off postback until it is switched on."""
    held = Delivery.objects.filter(pk=delivery.pk, postback__enabled=False).update(
        status=Delivery.HELD,
        claimed_until=None,
        last_error=f"Held: the postback is off. {pb.disabled_reason}".strip()[:2000],
        updated=now(),
    )
    if not held:  # switched on meanwhile: due again at once
        return finish(delivery, Delivery.PENDING, "")
    return Delivery.HELD


def finish(delivery, status, error, attempts=None, result=None):
    """End the delivery's claim with `status`; `attempts` and `result` when an
    attempt was made (its HTTP status is kept for the list)."""
    fields = {"status": status, "claimed_until": None, "last_error": error, "next_attempt": None}
    if attempts is not None:
        fields["attempts"] = attempts
    if result is not None:
        fields["last_http_status"] = result.status
    Delivery.objects.filter(pk=delivery.pk).update(updated=now(), **fields)
    return status


def schedule_span():
    """How long a round of attempts may last: the retry schedule's delays up
    to the last attempt allowed (32 hours for ten), scaled."""
    delays = [RETRY_DELAYS[min(n, len(RETRY_DELAYS)) - 1] for n in range(1, max_attempts())]
    return scaled(sum(delays))


def max_attempts():
    return max(1, settings.POSTBACKS_MAX_ATTEMPTS)


def throttled_for(result):
    """Seconds a throttling receiver (429 or 503 with Retry-After) asked us to wait, or None."""
    if result.status not in (429, 503):
        return None
    return parse_retry_after((result.header_map or {}).get("Retry-After"))


def retry_or_fail(delivery, result, reason):
    attempts = delivery.attempts + 1
    newer = order.newer_change(delivery)
    if newer is not None:
        # Retried now it would land after the newer change and undo it.
        order.supersede([delivery.pk], newer, statuses=[Delivery.SENDING])
        return Delivery.SUPERSEDED
    at, until = now(), delivery.retry_until
    if until is None:  # the first failure of this round: its budget starts
        until = at + schedule_span()
    wait = throttled_for(result)
    throttled = delivery.throttled + (wait is not None)
    counted = attempts - throttled  # the attempts that use up the budget
    if result.error_class == "BlockedAddress" or counted >= max_attempts() or at >= until:
        # A refused address will be refused again: retrying only delays the news.
        return finish(delivery, Delivery.FAILED, reason, attempts=attempts, result=result)
    if wait is None:
        retry_after = parse_retry_after((result.header_map or {}).get("Retry-After"))
        next_at = at + retry_delay(counted, retry_after)
    else:
        # As the receiver asks, within bounds; the round's last try at its end.
        next_at = min(at + retry_delay(max(counted, 1), wait), until)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.PENDING,
        attempts=attempts,
        throttled=throttled,
        retry_until=until,
        next_attempt=next_at,
        claimed_until=None,
        last_error=reason,
        last_http_status=result.status,
        updated=now(),
    )
    wake.look(next_at)
    return Delivery.PENDING


def reserve_slot(pb):
    """Take the postback's next request slot now, or return when the next one is free.

    Slots are 1/max_rps apart; the row lock (IMMEDIATE transactions on SQLite)
    makes two workers take two different slots.
    """
    interval = datetime.timedelta(seconds=1 / pb.max_rps)
    with transaction.atomic():
        row = OutgoingPostback.objects.select_for_update().only("next_slot").get(pk=pb.pk)
        at = now()
        if row.next_slot and row.next_slot > at:
            return row.next_slot
        OutgoingPostback.objects.filter(pk=pb.pk).update(next_slot=at + interval)
    return None


def defer(ids, at):
    """Due again at `at`, the postback's next free slot: not an attempt."""
    Delivery.objects.filter(pk__in=ids).update(
        status=Delivery.PENDING, next_attempt=at, claimed_until=None, updated=now()
    )
    wake.look(at)
    return Delivery.PENDING


def note_failure(pb, reason):
    OutgoingPostback.objects.filter(pk=pb.pk).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    limit = settings.POSTBACKS_DISABLE_AFTER
    if limit:
        disabled = OutgoingPostback.objects.filter(
            pk=pb.pk, enabled=True, consecutive_failures__gte=limit
        ).update(
            enabled=False,
            disabled_reason=f"{limit} failed attempts in a row, the last: {reason}"[:500],
        )
        if disabled:
            log.warning("Disabled outgoing postback %s after %s failures", pb.pk, limit)


def release_stray_holds():
    """A delivery written as held while its postback was being switched on."""
    for pb in OutgoingPostback.objects.filter(
        enabled=True, deliveries__status=Delivery.HELD
    ).distinct():
        pb.release_held()


def resend(queryset):
    """Send these deliveries again (same id): back to pending, due now, a fresh count."""
    ids = list(queryset.exclude(status=Delivery.SENDING).values_list("pk", flat=True))
    Delivery.objects.filter(pk__in=ids).update(
        status=Delivery.PENDING,
        attempts=0,
        throttled=0,
        retry_until=None,
        next_attempt=now(),
        claimed_until=None,
        updated=now(),
    )
    if ids:
        wake.look_on_commit()
    return ids


SAMPLE = {
    "click_id": "0123456789abcdef0123456789abcdef",
    "cl_id": "tracker-click-1",
    "action": "dep",
    "goal": "First deposit",
    "sum": "100.00",
    "currency": "USD",
    "tid": "sample-tid-1",
    "status": "approved",
    "geo": "DE",
    "user_id": "123456789",
    "username": "sample_user",
    "name": "Sample Client",
    "player_id": "player-1",
    "manager": "manager",
    "conversion_id": "0",
    "advert__campaign_id": "campaign-1",
    "advert__pixel": "pixel-1",
}


def context_for(postback, conversion=None):
    """The macros of `conversion` as `postback` sees them, or a sample's, in
    which every macro the postback names has a value: the preview shows where
    each one lands before a real conversion is picked."""
    if conversion is None:
        templates = (postback.url, postback.body, postback.headers, postback.required_macros)
        return sample_context(postback.spot, "\n".join(t or "" for t in templates))
    return conversion_context(conversion, attributed=not postback.all_users)


def preview(postback, conversion=None):
    return render.build(postback, context_for(postback, conversion))


# Seconds a test send from the admin may take: the page waits for it, so a
# slow receiver must not hold it for the postback's full timeout.
TEST_SEND_TIMEOUT = 3.0


def test_send(postback, conversion=None, user=None):
    """Send the postback once, log it, never retry. Returns the attempt."""
    req = preview(postback, conversion)
    try:
        signing.apply(req, postback, signing.test_id())
        result = sender.send(req, min(TEST_SEND_TIMEOUT, attempt_timeout(postback)))
    except Exception as e:  # as send(): the attempt is logged whatever happened
        log.exception("Test send of postback %s failed", postback.pk)
        result = sender.Result(error_class=type(e).__name__, error=str(e)[:2000])
    ok, reason = sender.judge(result, postback)
    return record_attempt(None, req, result, ok, reason, test_of=postback, user=user)
