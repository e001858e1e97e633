"""Money events in and out: the raw incoming log, outgoing configs, deliveries."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from crm.models import Client, Conversion
from postbacks import wake
from tracker.models import Goal, Partner, Pixel, SendsStatuses, Spot


class IncomingPostback(models.Model):
    """One request to the incoming endpoint, stored before it is processed."""

    RECEIVED, QUEUED, ACCEPTED, UPDATED, DUPLICATE, UNMATCHED, REJECTED = (
        "received",
        "queued",
        "accepted",
        "updated",
        "duplicate",
        "unmatched",
        "rejected",
    )
    STATUSES = [
        (RECEIVED, "Received"),
        # Stored and answered; the workers decide it (postbacks/incoming/batches.py).
        (QUEUED, "Queued"),
        (ACCEPTED, "Accepted"),
        # It changed the status or amount of a conversion it named by tid.
        (UPDATED, "Updated"),
        (DUPLICATE, "Duplicate"),
        (UNMATCHED, "Unmatched"),
        (REJECTED, "Rejected"),
    ]

    token = models.CharField(max_length=100, help_text="The token of the URL, as called.")
    spot = models.ForeignKey(
        Spot, on_delete=models.SET_NULL, null=True, blank=True, related_name="incoming"
    )
    method = models.CharField(max_length=10)
    path = models.TextField()
    query = models.TextField(blank=True)
    body = models.TextField(blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    received = models.DateTimeField(auto_now_add=True)

    status = models.CharField(max_length=10, choices=STATUSES, default=RECEIVED)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    warnings = models.TextField(blank=True)
    processed = models.DateTimeField(null=True, blank=True)
    client = models.ForeignKey(
        Client, on_delete=models.SET_NULL, null=True, blank=True, related_name="incoming"
    )
    conversion = models.ForeignKey(
        Conversion, on_delete=models.SET_NULL, null=True, blank=True, related_name="incoming"
    )
    click_id = models.CharField(
        max_length=255, blank=True, help_text="The click id an unmatched postback waits for."
    )
    # A signed request's webhook-id: a repeat of it within the window is refused.
    webhook_id = models.CharField(max_length=100, blank=True, db_index=True)
    # A queued row taken by a worker: whose claim, and until when (then another may take it).
    claim = models.CharField(max_length=32, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-received", "-id"]
        # Replaying decides a postback again and may send its events: a team lead's.
        permissions = [("replay_incomingpostback", "Can replay incoming postbacks")]
        indexes = [
            # Unmatched postbacks waiting for a client with this click id.
            models.Index(fields=["spot", "click_id"], name="incoming_waiting"),
            # The admin log, newest first, per spot and status.
            models.Index(fields=["spot", "status", "received"], name="incoming_spot_status"),
            models.Index(fields=["received"], name="incoming_received"),
            # The workers' queue: queued rows in arrival order.
            models.Index(
                fields=["id"], condition=models.Q(status="queued"), name="incoming_queued"
            ),
        ]

    def __str__(self):
        return f"{self.method} {self.received:%Y-%m-%d %H:%M:%S} {self.status}"


class OutgoingPostback(SendsStatuses):
    """A configured postback: which events of a spot go where, and how."""

    GET, POST = "GET", "POST"
    METHODS = [(GET, "GET"), (POST, "POST")]
    NONE, FORM, JSON, XML = "none", "form", "json", "xml"
    BODY_FORMATS = [
        (NONE, "No body"),
        (FORM, "Form (query string)"),
        (JSON, "JSON"),
        (XML, "XML"),
    ]

    spot = models.ForeignKey(Spot, on_delete=models.CASCADE, related_name="outgoing_postbacks")
    name = models.CharField(max_length=200)
    partner = models.ForeignKey(
        Partner,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="outgoing_postbacks",
        help_text="The recipient, when it is one of the spot's partners.",
    )
    goals = models.ManyToManyField(
        Goal,
        blank=True,
        related_name="outgoing_postbacks",
        help_text="None selected: every goal but New lead, which is sent only when picked.",
    )
    url = models.TextField(
        "URL template",
        help_text="With {macros}. 'URL|POST|body' and 'URL|JSON|body' also set the method "
        "and the body.",
    )
    method = models.CharField(max_length=4, choices=METHODS, default=GET)
    body_format = models.CharField(max_length=4, choices=BODY_FORMATS, default=NONE)
    body = models.TextField("body template", blank=True)
    headers = models.TextField(
        blank=True, help_text="One 'Name: value' per line; {macros} allowed."
    )
    secret_headers = models.CharField(
        max_length=300,
        blank=True,
        default="Authorization, Proxy-Authorization, X-Api-Key, Access-Token",
        help_text="Headers whose values are masked in the delivery log and the preview "
        "(they are sent as they are).",
    )
    status_words = models.TextField(
        "receiver's status words",
        blank=True,
        help_text="How the receiver names a conversion's status, one 'status = word' per "
        "line, e.g. 'approved = sale'; {status} sends the word. Empty: approved, pending, "
        "rejected as they are.",
    )
    required_macros = models.CharField(
        max_length=300,
        blank=True,
        help_text="Macros without which the receiver cannot use the event, comma separated, "
        "e.g. 'cl_id': an event whose value is empty is skipped, with the reason.",
    )
    signed = models.BooleanField(
        "sign requests",
        default=False,
        help_text="Sign every request as Standard Webhooks do (webhook-id, webhook-timestamp, "
        "webhook-signature), so the receiver can prove it came from this tracker.",
    )
    signing_secret = models.CharField(max_length=200, blank=True, editable=False)
    # After a rotation the old secret signs too, until this time.
    old_signing_secret = models.CharField(max_length=200, blank=True, editable=False)
    old_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    locked = models.BooleanField(
        default=False,
        editable=False,
        help_text="Set by a partner preset: the partner's URL cannot be edited.",
    )

    first_event_only = models.BooleanField(
        default=False, help_text="Send only the client's first event of each goal."
    )
    reengagement_window = models.DurationField(
        null=True,
        blank=True,
        help_text="Skip events that come later than this after the client arrived "
        "(e.g. '7 00:00:00' for 7 days). Empty: no limit.",
    )
    all_users = models.BooleanField(
        "send for all users",
        default=False,
        help_text="Off: only clients who came from an ad. On: every client, with empty "
        "attribution macros.",
    )
    min_delay = models.DurationField(
        "minimum delay", null=True, blank=True, help_text="Wait at least this long after the event."
    )
    max_rps = models.PositiveIntegerField(
        "max requests per second", null=True, blank=True, help_text="Empty: no limit."
    )
    success_status = models.CharField(
        max_length=100,
        blank=True,
        help_text="Status codes that mean success, e.g. '200' or '200-299, 202'. Empty: any 2xx.",
    )
    success_text = models.CharField(
        max_length=200, blank=True, help_text="The response must contain this text."
    )
    error_status = models.CharField(
        max_length=100, blank=True, help_text="Status codes that mean failure even if 2xx."
    )
    error_text = models.CharField(
        max_length=200, blank=True, help_text="A response containing this text is a failure."
    )
    timeout = models.FloatField(
        default=10.0,
        help_text="Seconds one attempt may take in all (connecting, sending, reading the "
        "answer); at most POSTBACKS_MAX_TIMEOUT (60 by default).",
    )

    next_slot = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Earliest time the next request may start under max requests per second.",
    )
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    disabled_reason = models.CharField(max_length=500, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["spot", "name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        switched_on = (
            self.enabled
            and self.pk is not None
            and OutgoingPostback.objects.filter(pk=self.pk, enabled=False).exists()
        )
        if switched_on:
            # Switched back on: count failures afresh and send what it held.
            self.disabled_reason, self.consecutive_failures = "", 0
        super().save(*args, **kwargs)
        if switched_on:
            self.release_held()

    def clean(self):
        super().clean()
        from postbacks.delivery.validation import clean_outgoing

        clean_outgoing(self)

    def release_held(self):
        """Make the deliveries held while this postback was off due now."""
        held = Delivery.objects.filter(postback=self, status=Delivery.HELD)
        ids = list(held.values_list("pk", flat=True))
        Delivery.objects.filter(pk__in=ids, status=Delivery.HELD).update(
            status=Delivery.PENDING, next_attempt=timezone.now(), updated=timezone.now()
        )
        if ids:
            wake.look_on_commit()
        return len(ids)


class Delivery(models.Model):
    """One event's delivery to one target: retried until it succeeds or gives up.

    The target is an outgoing postback, a goal's external postback or a pixel.
    The id (a UUID) is sent in a header and stays the same across retries and
    resends, so a receiver can drop repeats.
    """

    PENDING, SENDING, SUCCESS, FAILED, SKIPPED, HELD, SUPERSEDED = (
        "pending",
        "sending",
        "success",
        "failed",
        "skipped",
        "held",
        "superseded",
    )
    STATUSES = [
        (PENDING, "Pending"),
        (SENDING, "Sending"),
        (SUCCESS, "Delivered"),
        (FAILED, "Failed"),
        (SKIPPED, "Skipped"),
        # Its postback is switched off; switching it on sends it.
        (HELD, "Held (postback off)"),
        # A newer status change of its conversion to the same target came
        # before it was sent: sending it after would undo the newer one.
        (SUPERSEDED, "Superseded"),
    ]
    # Not yet done with: an event after one of these to the same target waits.
    UNFINISHED = (PENDING, SENDING, HELD)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversion = models.ForeignKey(Conversion, on_delete=models.CASCADE, related_name="deliveries")
    # The keys below are indexed in Meta.indexes, not each on its own (db_index).
    spot = models.ForeignKey(
        Spot, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    postback = models.ForeignKey(
        OutgoingPostback,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
        db_index=False,
    )
    pixel = models.ForeignKey(
        Pixel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
        db_index=False,
    )
    external_goal = models.ForeignKey(
        Goal,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="external_deliveries",
        db_index=False,
        help_text="Set when this is the goal's external postback.",
    )
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # The HTTP status of the last attempt (empty: no answer, or not tried yet):
    # the list shows it next to a delivery that is retrying.
    last_http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The event's id at the ad networks (the same on retries and resends), so
    # they dedupe it against the browser pixel's event.
    event_id = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # What this delivery reports: the conversion's status when it was made and,
    # for a status or amount change, what they were before ({status},
    # {previous_status}, {previous_sum}). Empty status: made before these were kept.
    event_status = models.CharField(max_length=10, blank=True)
    previous_status = models.CharField(max_length=10, blank=True)
    # As the conversion's amount: a crypto payout's places reach {previous_sum}.
    previous_amount = models.DecimalField(max_digits=28, decimal_places=8, null=True, blank=True)
    # The event's own values, fixed when it happened: a delivery sent late (a
    # minimum delay, retries, a rate limit) reports them, not the conversion as
    # it is by then. Empty: made before these were kept (the conversion's are sent).
    event_amount = models.DecimalField(max_digits=28, decimal_places=8, null=True, blank=True)
    event_currency = models.CharField(max_length=3, blank=True)
    event_time = models.DateTimeField(null=True, blank=True)
    # The delivery of the newer status change that made this one obsolete.
    superseded_by = models.UUIDField(null=True, blank=True)
    # The retry budget is time: set by the first failed attempt of a round, the
    # end of the retry schedule's span. Attempts a receiver throttled (429/503
    # with Retry-After) wait as asked and do not count towards
    # POSTBACKS_MAX_ATTEMPTS (`throttled` of `attempts` were such).
    retry_until = models.DateTimeField(null=True, blank=True)
    throttled = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "deliveries"
        # Resending sends an event again and dropping means it is never sent: a team lead's.
        permissions = [("resend_delivery", "Can resend and drop deliveries")]
        indexes = [
            # The sweep: pending deliveries that are due.
            models.Index(fields=["status", "next_attempt"], name="delivery_due"),
            # Also the spot's own key index (its first column).
            models.Index(fields=["spot", "created"], name="delivery_spot_created"),
            # A delivery has one target: each target's key is indexed where
            # set. Every claim and outcome rewrites a delivery's index entries
            # (its status is in delivery_due); an entry of a key that is empty
            # was a third of that work for nothing.
            *(
                models.Index(
                    fields=[name],
                    name=f"delivery_{name}",
                    condition=models.Q(**{f"{name}__isnull": False}),
                )
                for name in ("postback", "pixel", "external_goal")
            ),
        ]

    def __str__(self):
        return f"{self.target_name} · {self.get_status_display()}"

    @property
    def target_name(self):
        if self.postback_id:
            return str(self.postback)
        if self.pixel_id:
            return str(self.pixel)
        if self.external_goal_id:
            # The goal's own label: its spot is named beside it, and not read again.
            return f"External postback of {self.external_goal.label}"
        return "(deleted target)"


class DeliveryAttempt(models.Model):
    """One request sent for a delivery, exactly as sent, with what came back."""

    # Empty for an admin test send, which belongs to no delivery.
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, null=True, blank=True, related_name="attempt_log"
    )
    postback = models.ForeignKey(
        OutgoingPostback,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="test_attempts",
        help_text="Set on test sends.",
        db_index=False,  # attempt_postback_created
    )
    number = models.PositiveIntegerField()
    test = models.BooleanField(default=False, help_text="A test send from the admin.")
    method = models.CharField(max_length=10)
    url = models.TextField()
    request_headers = models.TextField(blank=True)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    success = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_index=False,  # attempt_sent_by
    )

    class Meta:
        ordering = ["delivery", "number"]
        indexes = [
            # The test sends of one postback, newest first, in its admin page.
            # Only test sends have either key: a delivery's attempts (thousands
            # a minute) add no entry to them.
            models.Index(
                fields=["postback", "created"],
                name="attempt_postback_created",
                condition=models.Q(postback__isnull=False),
            ),
            models.Index(
                fields=["sent_by"],
                name="attempt_sent_by",
                condition=models.Q(sent_by__isnull=False),
            ),
            # The Status page's last hour and the retention purge, by time.
            models.Index(fields=["created"], name="attempt_created"),
        ]

    def __str__(self):
        return f"#{self.number} {self.method} {self.response_status or self.error_class}"
