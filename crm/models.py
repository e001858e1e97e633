"""People and their timeline: clients, custom fields, messages, conversions."""

import functools
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import connection, models, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from crm import together, values
from crm.rows import columns_of, read_rows
from tracker.macros import ADVERT_KEYS  # noqa: F401 - also imported from here by others
from tracker.models import (
    CONVERSION_STATUSES,
    STATUS_APPROVED,
    STATUS_REJECTED,
    Goal,
    Spot,
    token_validator,
)


def new_click_id():
    # 128 random bits, URL-safe: nobody can guess another lead's click id.
    return secrets.token_hex(16)


class Client(models.Model):
    spot = models.ForeignKey(Spot, on_delete=models.PROTECT, related_name="clients")
    click_id = models.CharField(max_length=64, unique=True, default=new_click_id, editable=False)
    cl_id = models.CharField(
        "tracker click id",
        max_length=200,
        blank=True,
        help_text="The click id of the team's own tracker; postbacks may name the client by it.",
    )
    user_id = models.BigIntegerField("Telegram user id", null=True, blank=True)
    username = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=200, blank=True)
    geo = models.CharField(max_length=10, blank=True, help_text="Country code, e.g. DE.")
    player_id = models.CharField(
        max_length=200, blank=True, help_text="The client's id at the partner (playerid)."
    )
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="clients",
    )
    params = models.JSONField(default=dict, blank=True, help_text="Other entry parameters.")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # False for a click's client, inserted alone: the workers then count it,
    # give it its manager and cost, send its lead event and replay what waited
    # for it (postbacks/incoming/settling.py), and set it True.
    settled = models.BooleanField(default=True, editable=False)
    # Statistics group by it: set by the client's first postback that names a partner.
    partner = models.ForeignKey(
        "tracker.Partner", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    advert_pixel = models.CharField("pixel", max_length=200, blank=True)
    advert_campaign_id = models.CharField("campaign id", max_length=200, blank=True)
    advert_adset_id = models.CharField("ad set id", max_length=200, blank=True)
    advert_ad_id = models.CharField("ad id", max_length=200, blank=True)
    advert_campaign_name = models.CharField("campaign name", max_length=500, blank=True)
    advert_adset_name = models.CharField("ad set name", max_length=500, blank=True)
    advert_ad_name = models.CharField("ad name", max_length=500, blank=True)
    advert_placement = models.CharField("placement", max_length=200, blank=True)
    advert_site_source_name = models.CharField("traffic source", max_length=200, blank=True)
    advert_landing_id = models.CharField("landing id", max_length=200, blank=True)

    # What ad networks match an event to their user on, from the click (or the
    # bot API): sent by pixels, offered as macros. Empty when never given.
    ip = models.GenericIPAddressField("IP", null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    page_url = models.CharField(
        "page URL", max_length=2000, blank=True, help_text="The page the click came from."
    )
    fbclid = models.CharField("fbclid", max_length=500, blank=True)
    fbc = models.CharField("_fbc", max_length=500, blank=True, help_text="Facebook's click cookie.")
    fbp = models.CharField("_fbp", max_length=500, blank=True, help_text="Facebook's browser id.")
    ttclid = models.CharField("ttclid", max_length=500, blank=True)
    gclid = models.CharField("gclid", max_length=500, blank=True)
    ga = models.CharField("_ga", max_length=200, blank=True, help_text="Google Analytics' cookie.")
    yclid = models.CharField("yclid", max_length=200, blank=True)
    ym_uid = models.CharField("_ym_uid", max_length=200, blank=True, help_text="Metrica's id.")

    class Meta:
        ordering = ["-created"]
        indexes = [
            # The postback endpoint finds a client by the team tracker's click id.
            models.Index(fields=["spot", "cl_id"], name="client_spot_cl_id"),
            # Bots register clients idempotently by Telegram user id.
            models.Index(fields=["spot", "user_id"], name="client_spot_user_id"),
            # The workers find the clicks still to settle.
            models.Index(fields=["id"], condition=models.Q(settled=False), name="client_unsettled"),
        ]
        permissions = [
            # Without it a user sees only the clients assigned to them (crm/visibility.py).
            ("view_all_clients", "Can see every manager's clients"),
            ("assign_client", "Can assign clients to managers"),
        ]

    def __str__(self):
        return self.name or self.username or self.click_id

    def save(self, *args, **kwargs):
        if self._state.adding and self.manager_id is None and self.spot_id and self.settled:
            # Every path that makes a client (the bot API, an import, the
            # admin) comes here: the spot's next manager takes it; a click's
            # client gets its manager when it is settled.
            self.manager_id = self.spot.next_manager_id()
        super().save(*args, **kwargs)

    @property
    def advert(self):
        return {key: getattr(self, f"advert_{key}") for key in ADVERT_KEYS}

    @property
    def facebook_fbc(self):
        """The _fbc value Meta matches on: the cookie given, else built from fbclid
        and the click time as Meta's pixel builds it; '' when neither is known."""
        if self.fbc or not self.fbclid or self.created is None:
            return self.fbc
        return f"fb.1.{int(self.created.timestamp() * 1000)}.{self.fbclid}"

    @property
    def attributed(self):
        """Came from an ad: it carries a pixel or campaign of an ad network."""
        return any(self.advert.values())

    def field_values(self):
        """{key: value} of the client's custom fields, as stored."""
        loaded = getattr(self, "loaded_field_values", None)
        if loaded is not None:  # a batch of deliveries loads them for all its clients at once
            return loaded
        return dict(self.custom_values.values_list("field__key", "value"))

    def record_conversion(self, event, amount=None, currency="", tid="", status=None, locked=False):
        """Record `event` (a goal word) for this client.

        Returns (conversion, outcome), outcome being "created", "updated" (same
        goal and tid, new status or amount) or "duplicate" (nothing changed).
        Raises Goal.DoesNotExist for a word no goal of the spot accepts.
        A status of None means approved for a new conversion and "unchanged"
        for a repeat, so a network's retry cannot undo a chargeback.
        A new conversion of another goal than the event named (a first
        deposit counted as a repeat one) says why in its `decision`.

        The client's row is locked for the transaction, so two postbacks of one
        client are decided one after the other: two simultaneous first sales
        make one dep and one redep, never two deps. `locked`: the caller holds
        that lock already, inside the transaction this joins.
        """
        if not locked:
            with transaction.atomic():
                Client.objects.select_for_update().filter(pk=self.pk).exists()
                return self.record_conversion(event, amount, currency, tid, status, locked=True)
        goal, existing, why = self._decide(event, tid)
        if existing is not None:
            return existing, existing.apply_repeat(amount, status, goal.repeat_mode)
        conversion = together.create(
            Conversion,
            spot=self.spot,
            client=self,
            goal=goal,
            amount=amount or 0,
            currency=currency or self.spot.currency,
            tid=tid,
            status=status or STATUS_APPROVED,
        )
        conversion.decision = why
        loaded = getattr(self, "loaded_conversions", None)
        if loaded is not None:
            loaded.append(conversion)  # the newest: the list stays in id order
        return conversion, "created"

    def _decide(self, event, tid):
        """The goal `event` records for this client, the conversion it repeats
        (None for a new one) and why a new one is not of the goal the event
        named ("" when it is), from one read of the conversions that can decide it."""
        by_token = {g.token: g for g in self.spot.goal_list()}
        event = event.strip().lower()
        goal = None if event == "sale" else self.spot.goal_for_word(event)
        dep, redep = by_token.get("dep"), by_token.get("redep")
        # The client's first deposit decides dep or redep; its registration is
        # the one a reg repeats; a tid names the transaction a postback repeats.
        reg = goal if goal is not None and goal.token == "reg" else None
        rows = self._deciding_rows(dep, reg, goal, redep, tid)
        by_pk = {g.pk: g for g in by_token.values()}
        for c in rows:
            c.client = self
            if c.goal_id in by_pk:
                c.goal = by_pk[c.goal_id]  # the answer names it: no query for it

        def first(g, with_tid=None):
            found = [c for c in rows if g and c.goal_id == g.pk and with_tid in (None, c.tid)]
            return found[0] if found else None

        def need(token):
            if token not in by_token:
                raise Goal.DoesNotExist(f"The spot {self.spot} has no goal {token!r}.")
            return by_token[token]

        first_dep = first(dep)
        if goal is None:
            # Seed 003: "sale" is the first deposit, and a repeat once one exists;
            # with the tid of a deposit it is that deposit again (the newest).
            same = [c for c in (first(dep, tid), first(redep, tid)) if tid and c]
            if same:
                existing = max(same, key=lambda c: c.pk)
                return (dep if existing.goal_id == dep.pk else redep), existing, ""
            if first_dep is None:
                return need("dep"), None, ""
            # "sale + tid" is the seed's own repeat deposit; a bare sale may be either.
            return need("redep"), None, "" if tid else repeat_deposit_note(first_dep)
        existing = self._repeated(goal, tid, first)
        if existing is None and goal.token == "dep" and first_dep is not None:
            # A client first-deposits once: another first deposit, with a new tid
            # or none, is a repeat deposit (one that may exist with this tid).
            # Without a tid it is no retry of the first: networks that send no
            # tids send every deposit alike, and a retry that overwrote the
            # first deposit's amount would lose money silently.
            goal = need("redep")
            existing = self._repeated(goal, tid, first)
            return goal, existing, repeat_deposit_note(first_dep)
        return goal, existing, ""

    def _deciding_rows(self, dep, reg, goal, redep, tid):
        """The conversions that can decide an event: the first deposit, the
        registration when the event is one, and those a tid repeats. A batch
        of decisions reads its clients' once (loaded_conversions, kept
        current by record_conversion); one query otherwise."""
        pks = [g.pk if g else None for g in (dep, reg, goal, dep, redep)]
        loaded = getattr(self, "loaded_conversions", None)
        if loaded is None:
            rows = read_rows(Conversion, _deciding_sql(), [self.pk, *pks, tid, tid])
            kept = together.pending(self.pk)  # a batch's new ones, not inserted yet
            if not kept:
                return rows
            loaded = sorted(rows + kept, key=lambda c: c.pk)  # never both: kept are not stored
        deciding, repeatable = set(pks[:2]) - {None}, set(pks[2:]) - {None}
        return [
            c
            for c in loaded
            if c.goal_id in deciding or (tid and c.tid == tid and c.goal_id in repeatable)
        ]

    @staticmethod
    def _repeated(goal, tid, first):
        if goal.token == "reg":
            # A client registers once, whatever transaction id a network gives it.
            return first(goal)
        if tid:
            return first(goal, tid)
        return None


class CustomField(models.Model):
    TEXT, NUMBER, MONEY, DATE, BOOLEAN = "text", "number", "money", "date", "boolean"
    TYPES = [
        (TEXT, "Text"),
        (NUMBER, "Number"),
        (MONEY, "Money"),
        (DATE, "Date"),
        (BOOLEAN, "Yes / no"),
    ]

    spot = models.ForeignKey(Spot, on_delete=models.CASCADE, related_name="custom_fields")
    key = models.CharField(
        max_length=64,
        validators=[token_validator],
        help_text="Written by fields.<key>=value in postbacks, e.g. last_deposit.",
    )
    label = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=10, choices=TYPES, default=TEXT)

    class Meta:
        ordering = ["spot", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["spot", "key"], name="custom_field_key_unique_per_spot"
            ),
        ]

    def __str__(self):
        return self.label or self.key

    def to_stored(self, raw):
        """The value as stored for this field's type; raises ValueError when it does not fit."""
        raw = str(raw).strip()
        if self.type == self.NUMBER:
            return str(values.parse_decimal(raw).normalize())
        if self.type == self.MONEY:
            return values.money(values.parse_amount(raw))
        if self.type == self.DATE:
            return values.parse_date(raw).isoformat()
        if self.type == self.BOOLEAN:
            return "true" if values.parse_bool(raw) else "false"
        if len(raw) > 2000:
            raise ValueError("text longer than 2000 characters")
        return raw


class CustomFieldValue(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="custom_values")
    field = models.ForeignKey(CustomField, on_delete=models.CASCADE, related_name="values")
    value = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["field__key"]
        constraints = [
            models.UniqueConstraint(fields=["client", "field"], name="custom_value_one_per_field"),
        ]

    def __str__(self):
        return f"{self.field.key}={self.value}"

    def clean(self):
        super().clean()
        if self.field_id and self.client_id and self.field.spot_id != self.client.spot_id:
            raise ValidationError({"field": "This field belongs to another spot."})
        if self.field_id:
            try:
                self.value = self.field.to_stored(self.value)
            except ValueError as e:
                raise ValidationError({"value": str(e)}) from e


class Message(models.Model):
    SYSTEM, MANAGER, CLIENT = "system", "manager", "client"
    KINDS = [(SYSTEM, "System"), (MANAGER, "Manager"), (CLIENT, "Client")]

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=10, choices=KINDS, default=MANAGER)
    text = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    conversion = models.ForeignKey(
        "Conversion", on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        indexes = [
            # The client card shows its thread in order.
            models.Index(fields=["client", "created"], name="message_client_created"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.text[:60]}"


# A conversion whose amount has no rate to the reporting currency yet (a zero
# amount needs none): counted, flagged, revalued once rates arrive.
UNRATED = Q(reported_amount__isnull=True) & ~Q(amount=0)


def repeat_deposit_note(first_dep):
    """Why a first deposit was counted as a repeat one, and how to change the first."""
    how = (
        f"send its tid ({first_dep.tid!r}) to change that deposit instead"
        if first_dep.tid
        else "it has no tid, so only the admin can change it"
    )
    return (
        f"Counted as a repeat deposit (redep): this client's first deposit is conversion "
        f"{first_dep.pk} ({values.money(first_dep.amount)} {first_dep.currency}); {how}."
    )


@functools.cache
def _deciding_sql():
    # Raw SQL built once, as the endpoint's other reads (postbacks/incoming/process.py,
    # 4.). %s: the client; the goals whose conversions decide (the first
    # deposit, the registration; None for none); the goals a tid may repeat
    # and the tid, twice (none repeats without one).
    q = connection.ops.quote_name
    return (
        f"SELECT {columns_of(Conversion)} FROM {q(Conversion._meta.db_table)} "
        "WHERE client_id = %s AND ("
        "goal_id = %s OR goal_id = %s OR (goal_id IN (%s, %s, %s) AND tid = %s AND %s <> '')"
        ") ORDER BY id"
    )


# A conversion made or changed outside the endpoint's own path (the admin's
# form and actions), sent in its transaction with `conversion` and `outcome`
# ("created", or "updated" with conversion.change set): postbacks connects its
# fan-out (crm may not import postbacks), so the partner, the pixels and the
# chat hear of it as of a network's postback.
conversion_recorded = Signal()


class Conversion(models.Model):
    # Denormalised from client.spot: statistics filter and group by it without a join.
    spot = models.ForeignKey(Spot, on_delete=models.PROTECT, related_name="conversions")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="conversions")
    goal = models.ForeignKey(Goal, on_delete=models.PROTECT, related_name="conversions")
    amount = models.DecimalField(max_digits=28, decimal_places=8, default=0)
    currency = models.CharField(max_length=3, default="USD")
    # The amount in settings.REPORTING_CURRENCY at the rate of the conversion's
    # day (crm.rates); NULL while its currency has no rate: counted, flagged,
    # and filled in by `manage.py revalue_conversions` once rates arrive.
    reported_amount = models.DecimalField(
        "amount in the reporting currency",
        max_digits=28,
        decimal_places=8,
        null=True,
        blank=True,
        editable=False,
    )
    tid = models.CharField("transaction id", max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=CONVERSION_STATUSES, default=STATUS_APPROVED)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # A network's retry of one transaction is the same conversion.
            models.UniqueConstraint(
                fields=["client", "goal", "tid"],
                condition=~Q(tid=""),
                name="conversion_unique_tid",
            ),
        ]
        indexes = [
            # Statistics by conversion date within a spot.
            models.Index(fields=["spot", "created"], name="conversion_spot_created"),
            # "Has this client a deposit yet?" on every sale postback.
            models.Index(fields=["client", "goal"], name="conversion_client_goal"),
        ]

    # Set on a conversion just recorded (Client.record_conversion): why it is of
    # another goal than its event named, for the postback's answer and log.
    decision = ""

    def __str__(self):
        return f"{self.goal.token} {values.plain(self.amount)} {self.currency} ({self.status})"

    def save(self, *args, **kwargs):
        fields = kwargs.get("update_fields")
        if fields is None or {"amount", "currency", "created"} & set(fields):
            self.set_reported_amount()
            if fields is not None:
                kwargs["update_fields"] = {*fields, "reported_amount"}
        if together.holds(self):  # new in a batch: its row is inserted with the others
            together.saved(self, kwargs.get("update_fields"))
            return
        super().save(*args, **kwargs)

    def set_reported_amount(self):
        from crm import rates  # crm.rates reads ExchangeRate, defined below

        day = timezone.localdate(self.created or timezone.now())
        self.reported_amount = rates.to_reporting(self.amount, self.currency, day)

    def clean(self):
        super().clean()
        if self.client_id and self.goal_id and self.goal.spot_id != self.client.spot_id:
            raise ValidationError({"goal": "This goal belongs to another spot than the client."})

    @property
    def counted(self):
        return self.status != STATUS_REJECTED

    def apply_repeat(self, amount, status, mode=Goal.UPDATE_AMOUNT):
        """A later postback for this same transaction: update or call it a duplicate.

        A new status takes the amount sent with it. With the status unchanged
        the goal's repeat mode (`mode`) decides what its amount does: ignored
        (a duplicate), taken instead of the amount, or added to it (a network
        that reports each payout of one transaction)."""
        changes = {}
        if status and status != self.status:
            changes["status"] = status
        elif amount and mode == Goal.ADD_AMOUNT:
            amount = self.amount + amount
        elif amount is not None and amount != self.amount and mode == Goal.IGNORE:
            self.decision = (
                f"The same tid with another amount ({values.money(amount)}, kept "
                f"{values.money(self.amount)}): ignored, as this goal ignores repeats; its "
                "'a repeat with the same tid' set to update or add the amount would take it."
            )
            amount = None
        if amount is not None and amount != self.amount:
            changes["amount"] = amount
        if not changes:
            return "duplicate"
        # What it was: a status change is an event of its own (postbacks.fanout).
        self.change = (self.status, self.amount)
        for name, value in changes.items():
            setattr(self, name, value)
        self.save(update_fields=[*changes, "updated"])
        return "updated"

    def save_edit(self):
        """Save a conversion a person added or edited (the admin) and make the
        events a postback would: a new one is "created", a new status or
        amount "updated" with what it was. Returns the outcome, "" for none."""
        with transaction.atomic():
            before = None
            if not self._state.adding:
                # Locked: a postback changing it meanwhile is decided before or after, not between.
                stored = Conversion.objects.select_for_update().filter(pk=self.pk)
                before = stored.values_list("status", "amount").first()
            adding = self._state.adding or before is None
            self.save()
            outcome = "created" if adding else self._changed_from(*before)
            if outcome:
                conversion_recorded.send(sender=Conversion, conversion=self, outcome=outcome)
        return outcome

    def _changed_from(self, status, amount):
        if status == self.status and amount == self.amount:
            return ""  # a note, a tid or a currency edited: no event
        self.change = (status, amount)
        return "updated"


class DailyStat(models.Model):
    """The statistics rollup: counts and sums per day, spot, goal and dimensions.

    Kept in step with conversions and clients by crm.stats (signals), rebuilt
    by `manage.py rebuild_stats`. The statistics page reads only this table.
    Each event is added at several grains (crm.stats.GRAINS): the finest keeps
    every dimension, coarser ones keep one or two and leave the others blank,
    so a report by campaign or by geo reads rows in proportion to campaigns or
    geos per day, not to conversions: the page costs about the same at ten
    million conversions as at a hundred thousand.
    """

    CONVERSION, CLICK = "conversion", "click"
    BASES = [(CONVERSION, "Conversion date"), (CLICK, "Click date")]

    grain = models.CharField(max_length=8, default="*")
    basis = models.CharField(max_length=10, choices=BASES)
    day = models.DateField()
    spot = models.ForeignKey(Spot, on_delete=models.CASCADE, related_name="+")
    # Plain ids, 0 for none: they are part of the unique key, where NULLs would not match.
    goal_pk = models.BigIntegerField(default=0, help_text="0: the leads row.")
    campaign = models.CharField(max_length=200, blank=True)
    adset = models.CharField(max_length=200, blank=True)
    ad = models.CharField(max_length=200, blank=True)
    geo = models.CharField(max_length=10, blank=True)
    manager_pk = models.BigIntegerField(default=0)
    partner_pk = models.BigIntegerField(default=0)
    count = models.BigIntegerField(default=0)
    # In the reporting currency; `unrated` counts the amounts left out for want of a rate.
    amount = models.DecimalField(max_digits=30, decimal_places=8, default=0)
    unrated = models.BigIntegerField(default=0)
    # What the traffic cost, in the reporting currency: on the leads row
    # (goal_pk 0) of its key, added by crm.spend; `cost_unrated` counts the
    # spend rows left out for want of a rate.
    # A database default too: the rollup's raw upserts name only the columns they move.
    cost = models.DecimalField(max_digits=30, decimal_places=8, default=0, db_default=0)
    cost_unrated = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        verbose_name = "statistics"
        verbose_name_plural = "statistics"
        constraints = [
            # One row per key; also the index of the page's query (grain, basis, day range).
            models.UniqueConstraint(
                fields=[
                    "grain",
                    "basis",
                    "day",
                    "spot",
                    "goal_pk",
                    "campaign",
                    "adset",
                    "ad",
                    "geo",
                    "manager_pk",
                    "partner_pk",
                ],
                name="daily_stat_key",
            ),
        ]
        indexes = [
            # A manager's own statistics: the finest grain, one manager's rows.
            models.Index(
                fields=["manager_pk", "basis", "day"],
                condition=Q(grain="*"),
                name="daily_stat_manager",
            ),
        ]

    def __str__(self):
        return f"{self.day} {self.spot_id} {self.goal_pk}: {self.count}"


class ExchangeRate(models.Model):
    """How many units of `currency` one unit of `base` bought on `day`.

    `base` is the reporting currency the rate was written for (the ECB's files
    are per euro and are converted on import, crm.rates): rates written for
    another reporting currency are kept but not used.
    """

    day = models.DateField()
    base = models.CharField(max_length=3, default=values.reporting_currency, editable=False)
    currency = models.CharField(
        max_length=3, validators=[RegexValidator(r"^[A-Z]{3}$", "Three capital letters, e.g. EUR.")]
    )
    rate = models.DecimalField(
        max_digits=30,
        decimal_places=12,
        validators=[MinValueValidator(values.MIN_RATE)],
        help_text="Units of this currency per one unit of the reporting currency.",
    )

    class Meta:
        ordering = ["-day", "currency"]
        constraints = [
            # Also the index of the look-up: the latest rate on or before a day.
            models.UniqueConstraint(fields=["base", "currency", "day"], name="rate_one_per_day"),
        ]

    def __str__(self):
        return f"{self.day}: 1 {self.base} = {values.plain(self.rate)} {self.currency}"


class Spend(models.Model):
    """What the traffic cost: per day, spot and ad dimensions, from one source.

    Three ways fill it: clicks carrying a cost parameter (summed per key, source
    "click"), daily spend files uploaded in the admin (source "file:<name>"),
    and the ad networks' reporting APIs (source "facebook:<account>",
    "tiktok:<account>"). Importing a day again replaces that source's rows of
    the day, so figures are never doubled.
    """

    day = models.DateField()
    spot = models.ForeignKey(Spot, on_delete=models.CASCADE, related_name="spend")
    source = models.CharField(max_length=120, help_text="click, file:<name>, facebook:<account>…")
    campaign = models.CharField(max_length=200, blank=True)
    adset = models.CharField("ad set", max_length=200, blank=True)
    ad = models.CharField(max_length=200, blank=True)
    geo = models.CharField(max_length=10, blank=True)
    amount = models.DecimalField(max_digits=28, decimal_places=8)
    currency = models.CharField(max_length=3)
    # In the reporting currency at the day's rate; empty while no rate is known.
    reported_amount = models.DecimalField(max_digits=30, decimal_places=8, null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "spend"
        ordering = ["-day", "spot", "campaign"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "day", "spot", "campaign", "adset", "ad", "geo", "currency"],
                name="spend_one_row_per_key",
            )
        ]
        indexes = [models.Index(fields=["spot", "day"], name="spend_spot_day")]

    def __str__(self):
        return f"{self.day} {self.campaign or '-'} {self.amount} {self.currency}"


class SpendMapping(models.Model):
    """How the columns of one kind of spend file map to ours, remembered per source."""

    source = models.CharField(max_length=100, unique=True, help_text="e.g. Ads Manager")
    columns = models.JSONField(
        default=dict,
        help_text="Our field -> the file's column title, e.g. {'amount': 'Amount spent (USD)'}.",
    )
    updated = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.source


class ReportSettings(models.Model):
    """A user's own report: the columns they chose, and the token of the JSON report."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="report_settings"
    )
    columns = models.JSONField(default=list, blank=True, help_text="Empty: every column.")
    # The JSON report's bearer token; only its SHA-256 is kept, as with passwords.
    token_hash = models.CharField(max_length=64, blank=True, db_index=True, editable=False)

    def __str__(self):
        return f"Report of {self.user}"
