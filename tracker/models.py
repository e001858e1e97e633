"""Tracking setup: spots, their goals, ad-network pixels and partners."""

import ipaddress
import re
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.db.models import Exists, F, OuterRef
from django.urls import reverse

from tracker import links
from tracker.macros import validate_macros

TOKEN_RE = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
token_validator = RegexValidator(
    TOKEN_RE, "Use lowercase letters, digits, '_', '.' or '-' (up to 64 characters)."
)

STATUS_APPROVED, STATUS_PENDING, STATUS_REJECTED = "approved", "pending", "rejected"
CONVERSION_STATUSES = [
    (STATUS_APPROVED, "Approved"),
    (STATUS_PENDING, "Pending"),
    (STATUS_REJECTED, "Rejected"),
]

# The goals every spot starts with, and the event words networks send for them.
# "sale" means dep for a client without a deposit and redep after that (seed 003:
# "resale, or sale + tid"); the endpoint makes that choice.
REVENUE_GOALS = {"dep", "redep"}
DEFAULT_GOALS = [
    ("reg", "Registration", "registration"),
    ("dep", "First deposit", "sale, first_deposit"),
    ("redep", "Repeat deposit", "resale, recurring_deposit"),
    ("lead", "New lead", ""),
]
# Each default goal's event name per ad network: the networks' standard events,
# so a pixel added to a spot sends from the first deposit on. Facebook's
# standard events; TikTok's (CompletePayment is a reserved name TikTok maps to
# Purchase, ClickForm to SubmitForm); GA4's recommended events; Metrica's goal
# identifiers are the team's own (a JavaScript event goal of these ids).
DEFAULT_EVENTS = {
    "lead": {
        "facebook": "Lead",
        "tiktok": "SubmitForm",
        "google": "generate_lead",
        "yandex": "lead",
    },
    "reg": {
        "facebook": "CompleteRegistration",
        "tiktok": "CompleteRegistration",
        "google": "sign_up",
        "yandex": "registration",
    },
    "dep": {
        "facebook": "Purchase",
        "tiktok": "Purchase",
        "google": "purchase",
        "yandex": "deposit",
    },
    "redep": {
        "facebook": "Purchase",
        "tiktok": "Purchase",
        "google": "purchase",
        "yandex": "redeposit",
    },
}
# The system message each default goal posts into the client's chat (CRM on);
# a new lead posts none: the client's first message is theirs. No {player_id}:
# most partners send none, and "player " with nothing after it reads as a bug.
DEFAULT_MESSAGES = {
    "reg": "Registered at the partner",
    "dep": "First deposit {sum} {currency}",
    "redep": "Deposit {sum} {currency}",
}


def default_goal_fields(token):
    """What a default goal starts with beyond its name and aliases."""
    fields = {f"{n}_event": e for n, e in DEFAULT_EVENTS.get(token, {}).items()}
    fields["message_template"] = DEFAULT_MESSAGES.get(token, "")
    fields["revenue"] = fields["show_sum"] = token in REVENUE_GOALS
    # Statistics count leads as clients: no column of its own.
    fields["show_count"] = token != LEAD
    return fields


# A new client, by any path, is an event of this goal, made only for the
# targets that pick it (postbacks.delivery.fanout.new_lead); statistics count leads
# as clients, so the goal shows no column of its own there.
LEAD = "lead"


def default_goals():
    """(token, fields) of every default goal, in the order a new spot shows them."""
    for order, (token, name, aliases) in enumerate(DEFAULT_GOALS):
        yield (
            token,
            {"name": name, "aliases": aliases, "order": order, **default_goal_fields(token)},
        )


def split_words(text):
    """'a, b  c' -> ['a', 'b', 'c']: the admin's comma or space separated lists."""
    return [w for w in re.split(r"[\s,;]+", text.strip().lower()) if w]


def parse_networks(text):
    """One IP or CIDR network per line (or comma separated); raises ValueError."""
    return [ipaddress.ip_network(w, strict=False) for w in re.split(r"[\s,;]+", text) if w]


def parse_status_map(text):
    """Lines of 'their word = approved|pending|rejected' -> {word: status}."""
    known = {s for s, _ in CONVERSION_STATUSES}
    result = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, sep, status = line.partition("=")
        word, status = word.strip().lower(), status.strip().lower()
        if not sep or not word or status not in known:
            raise ValueError(
                f"line {n}: write 'their word = approved', 'pending' or 'rejected', got {line!r}"
            )
        result[word] = status
    return result


def new_api_key():
    # 256 random bits: the key a bot sends to register clients on a spot.
    return secrets.token_urlsafe(32)


class CallerRules(models.Model):
    """What a spot or a partner says about who may call it and how to answer."""

    allowed_ips = models.TextField(
        blank=True,
        help_text="Only these IPs or networks (CIDR) may call the incoming postback URL, "
        "one per line. Empty: anyone with the URL.",
    )
    status_map = models.TextField(
        blank=True,
        help_text="The network's own status words, one per line: 'confirmed = approved', "
        "'hold = pending', 'declined = rejected'.",
    )
    plain_answer = models.CharField(
        max_length=200,
        blank=True,
        help_text="Answer accepted postbacks with this plain text (e.g. OK) instead of JSON.",
    )
    require_signature = models.BooleanField(
        "require signed requests",
        default=False,
        help_text="Accept only JSON POSTs signed as Standard Webhooks (webhook-id, "
        "webhook-timestamp, webhook-signature) with the signing secret below.",
    )
    signing_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="whsec_… shared with the caller; shown once when made.",
    )

    class Meta:
        abstract = True

    def clean(self):
        super().clean()
        errors = {}
        try:
            parse_networks(self.allowed_ips)
        except ValueError as e:
            errors["allowed_ips"] = f"Not an IP address or network: {e}"
        try:
            parse_status_map(self.status_map)
        except ValueError as e:
            errors["status_map"] = str(e)
        if errors:
            raise ValidationError(errors)

    def ip_allowed(self, addr):
        networks = parse_networks(self.allowed_ips)
        if not networks:
            return True
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in networks)


class Spot(CallerRules):
    """A bot or landing of the team: the unit leads arrive at and postbacks go to."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True, help_text="Used in click links: /go/<slug>.")
    postback_token = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="Secret part of the incoming postback URL. Regenerate it if it leaked.",
    )
    crm_enabled = models.BooleanField(
        "CRM enabled", default=True, help_text="Post system messages into the client's chat."
    )
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "Three capital letters, e.g. USD.")],
        help_text="Used when a postback names no currency.",
    )
    target_url = models.URLField(
        max_length=2000,
        blank=True,
        help_text="Where /go/<slug> sends a new lead; {{tracker.clickid}} is replaced.",
    )
    api_key = models.CharField(
        "API key",
        max_length=64,
        unique=True,
        default=new_api_key,
        editable=False,
        help_text="Bots send it in the X-Api-Key header of POST /api/clients.",
    )
    cost_param = models.CharField(
        "cost parameter",
        max_length=64,
        default="cost",
        help_text="The click parameter carrying what the click cost (the traffic source's "
        "{cost} macro), e.g. /go/<slug>?cost={cost}. Empty: clicks carry no cost.",
    )
    cost_currency_param = models.CharField(
        "cost currency parameter",
        max_length=64,
        default="cost_currency",
        help_text="The click parameter naming the cost's currency; without it the spot's currency.",
    )
    answer_after_processing = models.BooleanField(
        default=False,
        help_text="Answer incoming postbacks with their outcome (accepted, duplicate, "
        "unmatched…) after deciding them, as before. Off: a postback is stored and answered "
        '{"status": "queued"} at once, and the workers decide it a moment later.',
    )
    created = models.DateTimeField(auto_now_add=True)
    # Until then an unmatched postback of this spot may still find its client:
    # a new client looks for one only while this is in the future, so clicks
    # of spots without waiting postbacks cost no extra query.
    unmatched_until = models.DateTimeField(null=True, blank=True, editable=False)
    managers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="managed_spots",
        help_text="New clients of this spot are given to these managers in turn (the active "
        "ones). Empty: new clients stay unassigned.",
    )
    # Kept by Spot.refresh_has_managers whenever `managers` changes: a click on a
    # spot without managers then costs no query to find that out.
    has_managers = models.BooleanField(default=False, editable=False)
    # How many new clients were given a manager: the round-robin's turn.
    assigned = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        adding = self._state.adding
        with transaction.atomic():
            super().save(*args, **kwargs)
            # The add page saves the default goals from its own rows instead.
            if adding and not getattr(self, "goals_from_form", False):
                self.create_default_goals()

    def create_default_goals(self):
        """Add the default goals the spot lacks: one whose token or aliases mean
        a goal of the spot already (renamed on the add page) is left out."""
        taken = {word for goal in self.goals.all() for word in goal.words}
        for token, defaults in default_goals():
            if taken.isdisjoint([token, *split_words(defaults["aliases"])]):
                Goal.objects.create(spot=self, token=token, **defaults)

    def goal_list(self):
        """The spot's goals in order: those loaded with it (the postback endpoint
        reads them once, with the spot), else read now."""
        loaded = getattr(self, "loaded_goals", None)
        return loaded if loaded is not None else list(self.goals.all())

    def goal_for_word(self, word):
        """The goal an event word means (token or alias); raises Goal.DoesNotExist."""
        word = word.strip().lower()
        for goal in self.goal_list():
            if word in goal.words:
                return goal
        raise Goal.DoesNotExist(f"No goal of spot {self} accepts the event {word!r}.")

    def accepted_words(self):
        return [w for goal in self.goal_list() for w in goal.words]

    def next_manager_id(self):
        """The manager whose turn it is to get a new client of this spot, or None.

        Round-robin over the spot's active managers in user id order. The
        UPDATE of the counter takes the spot's row lock until the transaction
        ends (on SQLite, the database's write lock), so simultaneous clicks
        take their turns one after the other and spread evenly. Two queries,
        and none at all for a spot without managers.

        The lock is FOR NO KEY UPDATE (the counter is no key), so foreign-key
        checks of other transactions' new clients (FOR KEY SHARE) pass it, and
        it is taken before the client's rollup rows: the bot API takes the
        same lock first too (crm.clicks.register_client), so the two never
        wait for each other in opposite orders.
        """
        if not self.has_managers:
            return None
        with transaction.atomic(savepoint=False):
            Spot.objects.filter(pk=self.pk).update(assigned=F("assigned") + 1)
            rows = list(
                Spot.managers.through.objects.filter(spot_id=self.pk, user__is_active=True)
                .order_by("user_id")
                .values_list("user_id", "spot__assigned")
            )
        if not rows:
            return None
        turn = rows[0][1] - 1
        return rows[turn % len(rows)][0]

    @staticmethod
    def refresh_has_managers(spot_ids=None):
        """Recompute has_managers of these spots (all when None)."""
        spots = Spot.objects.all() if spot_ids is None else Spot.objects.filter(pk__in=spot_ids)
        listed = Spot.managers.through.objects.filter(spot_id=OuterRef("pk"))
        spots.update(has_managers=Exists(listed))

    def regenerate_token(self):
        self.postback_token = uuid.uuid4()
        self.save(update_fields=["postback_token"])

    def regenerate_api_key(self):
        self.api_key = new_api_key()
        self.save(update_fields=["api_key"])

    def incoming_path(self):
        return reverse("incoming-postback", args=[self.postback_token])

    def incoming_url(self, request=None):
        """The absolute URL affiliate networks call."""
        path = self.incoming_path()
        if settings.PUBLIC_URL:
            return settings.PUBLIC_URL.rstrip("/") + path
        if request is not None:
            return request.build_absolute_uri(path)
        return path


class Goal(models.Model):
    """An event a postback can report: reg, dep, redep or a custom token."""

    spot = models.ForeignKey(Spot, on_delete=models.CASCADE, related_name="goals")
    name = models.CharField(max_length=100)
    token = models.CharField(
        max_length=64, validators=[token_validator], help_text="The event name in postbacks."
    )
    aliases = models.CharField(
        max_length=500,
        blank=True,
        help_text="Other event words networks send for this goal, comma separated.",
    )
    order = models.PositiveSmallIntegerField(default=10)
    facebook_event = models.CharField(max_length=100, blank=True, help_text="e.g. Purchase")
    tiktok_event = models.CharField(max_length=100, blank=True, help_text="e.g. Purchase")
    google_event = models.CharField(
        "Google Analytics event", max_length=100, blank=True, help_text="e.g. purchase"
    )
    yandex_event = models.CharField(
        "Yandex Metrica goal",
        max_length=100,
        blank=True,
        help_text="The identifier of a JavaScript-event goal created in Metrica: it must "
        "match that goal (the defaults are lead, registration, deposit, redeposit).",
    )
    external_postback = models.TextField(
        blank=True,
        validators=[validate_macros],
        help_text="Forward this event to your own tracker: a URL with {macros}.",
    )
    show_count = models.BooleanField(default=True, help_text="Show the count in statistics.")
    show_sum = models.BooleanField(default=False, help_text="Show the sum in statistics.")
    revenue = models.BooleanField(
        "counts as revenue",
        default=False,
        help_text="Add this goal's amounts into Revenue in statistics: deposits are revenue; "
        "registrations, payouts and withdrawals are not.",
    )
    IGNORE, UPDATE_AMOUNT, ADD_AMOUNT = "ignore", "update", "add"
    REPEAT_MODES = [
        (IGNORE, "Ignore it (a duplicate)"),
        (UPDATE_AMOUNT, "Update the amount"),
        (ADD_AMOUNT, "Add the amount"),
    ]
    repeat_mode = models.CharField(
        "a repeat with the same tid",
        max_length=10,
        choices=REPEAT_MODES,
        default=UPDATE_AMOUNT,
        help_text="What a postback repeating a transaction id of this goal does when its "
        "status is unchanged.",
    )
    message_template = models.TextField(
        blank=True,
        validators=[validate_macros],
        help_text="System message posted into the client's chat, e.g. "
        "'Deposit {sum} {currency} (player {player_id})'. Empty: no message.",
    )

    class Meta:
        ordering = ["spot", "order", "id"]
        constraints = [
            # The endpoint resolves an event word to a goal within one spot.
            models.UniqueConstraint(fields=["spot", "token"], name="goal_token_unique_per_spot"),
        ]

    def __str__(self):
        # Goals of several spots meet in pickers, lists and statistics: named
        # with their spot, "Casino bot · First deposit (dep)", they are told apart.
        return f"{self.spot} · {self.label}"

    @property
    def label(self):
        """The goal within its spot: "First deposit (dep)"."""
        return f"{self.name} ({self.token})"

    @property
    def words(self):
        """Every event word that means this goal: its token, then its aliases."""
        return [self.token, *split_words(self.aliases)]

    def clean(self):
        super().clean()
        if not self.spot_id:
            return
        others = Goal.objects.filter(spot_id=self.spot_id).exclude(pk=self.pk)
        taken = {}
        for goal in others:
            for word in goal.words:
                taken.setdefault(word, goal)
        clashes = [w for w in self.words if w in taken]
        if clashes:
            word = clashes[0]
            raise ValidationError(
                {
                    "aliases" if word != self.token else "token": (
                        f"'{word}' already means the goal {taken[word].label} of this spot."
                    )
                }
            )
        bad = [w for w in split_words(self.aliases) if not re.match(TOKEN_RE, w)]
        if bad:
            raise ValidationError({"aliases": f"Not a valid event word: {bad[0]!r}."})


class SendsStatuses(models.Model):
    """Which conversion statuses a target (outgoing postback, pixel) is sent.

    A conversion that reaches one of them, when made or later (pending to
    approved, approved to rejected), makes a delivery of it; one held as
    pending for a target that sends approved only goes out once approved."""

    send_approved = models.BooleanField("send approved", default=True)
    send_pending = models.BooleanField("send pending", default=True)
    send_rejected = models.BooleanField(
        "send rejected", default=True, help_text="Also when an approved one is charged back."
    )

    # What buyers tune at the source (shaping): how many, how much, which.
    ALL, FIRST, APPROVED_ONLY = "all", "first", "approved"
    SEND_MODES = [
        (ALL, "All events"),
        (FIRST, "First event per client only"),
        (APPROVED_ONLY, "Approved only"),
    ]
    send_share = models.PositiveSmallIntegerField(
        "send share (%)",
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Send this share of the events that qualify, per goal, by a counter "
        "(50: every second one); the others are recorded as skipped by share.",
    )
    payout_share = models.PositiveSmallIntegerField(
        "payout share (%)",
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="{sum} is this share of the conversion's amount; {sum_original} is the "
        "amount itself.",
    )
    send_mode = models.CharField(max_length=10, choices=SEND_MODES, default=ALL)
    min_amount = models.DecimalField(
        max_digits=28, decimal_places=8, null=True, blank=True, help_text="Empty: no minimum."
    )
    max_amount = models.DecimalField(
        max_digits=28, decimal_places=8, null=True, blank=True, help_text="Empty: no maximum."
    )
    geos = models.CharField(
        max_length=500,
        blank=True,
        help_text="Only clients of these countries, comma separated (US, DE). Empty: any.",
    )
    campaign_pattern = models.CharField(
        max_length=200,
        blank=True,
        help_text="Only clients whose campaign matches this pattern (* for any characters, "
        "e.g. 'fb_*'). Empty: any.",
    )
    # The share's counter per goal: {goal id: events that qualified so far}.
    share_counters = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        abstract = True

    def sends(self, status):
        return getattr(self, f"send_{status}")


class Pixel(SendsStatuses):
    """A spot's ad-network pixel: goals with an event name for the network go there."""

    FACEBOOK, TIKTOK, GOOGLE, YANDEX = "facebook", "tiktok", "google", "yandex"
    NETWORKS = [
        (FACEBOOK, "Facebook Conversions API"),
        (TIKTOK, "TikTok Events API"),
        (GOOGLE, "Google Analytics 4 (Measurement Protocol)"),
        (YANDEX, "Yandex Metrica offline conversions"),
    ]

    spot = models.ForeignKey(Spot, on_delete=models.CASCADE, related_name="pixels")
    network = models.CharField(max_length=20, choices=NETWORKS)
    pixel_id = models.CharField(
        max_length=200,
        help_text="Facebook pixel ID, TikTok pixel code, GA4 measurement ID or Metrica counter.",
    )
    access_token = models.CharField(
        max_length=500,
        blank=True,
        help_text="Conversions API token, TikTok access token, GA4 API secret or Metrica "
        "OAuth token.",
    )
    test_event_code = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)
    # Approved only by default: an ad network learns from what it is told, and
    # a pending or rejected deposit taught as a conversion misleads it.
    send_pending = models.BooleanField("send pending", default=False)
    send_rejected = models.BooleanField("send rejected", default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["spot", "network"], name="pixel_one_per_network"),
        ]

    def __str__(self):
        return f"{self.get_network_display()} {self.pixel_id}"


class Partner(CallerRules):
    """An affiliate network the team registers leads at (seed 003 integrations)."""

    spot = models.ForeignKey(Spot, on_delete=models.CASCADE, related_name="partners")
    name = models.CharField(max_length=200)
    slug = models.SlugField(help_text="Sent as partner=<slug> on the incoming postback URL.")
    click_id_param = models.CharField(
        "click-id parameter",
        max_length=64,
        default="sub1",
        help_text="The partner's parameter that carries our click id, e.g. sub4.",
    )
    click_id_macro = models.CharField(
        "click-id macro",
        max_length=64,
        blank=True,
        help_text="The partner's macro that gives our click id back in its postbacks, "
        "e.g. {sub4}. Empty: the click-id parameter in braces.",
    )
    preset = models.CharField(max_length=64, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["spot", "name"]
        constraints = [
            models.UniqueConstraint(fields=["spot", "slug"], name="partner_slug_unique_per_spot"),
        ]

    def __str__(self):
        return self.name

    @property
    def clickid_macro(self):
        return self.click_id_macro or "{" + self.click_id_param + "}"


class PartnerPostback(models.Model):
    """One postback the partner sends us (Registration, First Deposit, ...), seed 003.

    Values are the partner's own macros ({amount}, {transaction_id}); the
    incoming URL built from them is what the team pastes into the partner.
    """

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="postbacks")
    name = models.CharField(max_length=100, help_text="e.g. First Deposit")
    event = models.CharField(
        max_length=64,
        validators=[token_validator],
        help_text="The event word sent as tracker.event: registration, sale, resale or a "
        "goal token of the spot.",
    )
    amount = models.CharField(
        max_length=100, blank=True, help_text="The partner's amount macro, e.g. {amount}."
    )
    currency = models.CharField(
        max_length=100, blank=True, help_text="A currency macro ({currency}) or a code (usd)."
    )
    tid = models.CharField(
        "transaction id",
        max_length=100,
        blank=True,
        help_text="The partner's transaction macro, e.g. {transaction_id}.",
    )
    status = models.CharField(
        max_length=100,
        blank=True,
        help_text="The partner's status macro, e.g. {status}; its words are mapped by the "
        "partner's status map.",
    )
    fields = models.TextField(
        "field mappings",
        blank=True,
        help_text="One 'fields.KEY={partner macro}' per line, e.g. fields.user_id={user_id}.",
    )
    order = models.PositiveSmallIntegerField(default=10)

    class Meta:
        ordering = ["partner", "order", "id"]

    def __str__(self):
        return f"{self.partner}: {self.name}"

    def clean(self):
        super().clean()
        try:
            links.parse_field_mappings(self.fields)
        except ValueError as e:
            raise ValidationError({"fields": str(e)}) from e

    def params(self):
        """(name, value) pairs of the incoming URL, values as the partner's macros."""
        pairs = [
            ("partner", self.partner.slug),
            ("clickid", self.partner.clickid_macro),
            ("tracker.event", self.event),
        ]
        for name, value in [
            ("tracker.cost", self.amount),
            ("tracker.currency", self.currency),
            ("tracker.tid", self.tid),
            ("status", self.status),
        ]:
            if value.strip():
                pairs.append((name, value.strip()))
        for key, value in links.parse_field_mappings(self.fields):
            pairs.append((f"fields.{key}", value))
        return pairs

    def incoming_url(self, request=None):
        """The ready URL to paste into the partner's postback settings."""
        base = self.partner.spot.incoming_url(request)
        return base + "?" + links.query_with_macros(self.params())


class PartnerPreset(models.Model):
    """A ready integration of a known network, loaded from tracker/presets/*.json."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    data = models.JSONField(default=dict)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class RegistrationLink(models.Model):
    """A partner's signup link with our click id inside (seed 003 registration links)."""

    spot = models.ForeignKey(Spot, on_delete=models.CASCADE, related_name="registration_links")
    partner = models.ForeignKey(
        Partner,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="registration_links",
        help_text="Its click-id parameter is added with {{tracker.clickid}}.",
    )
    name = models.CharField(max_length=200, help_text="e.g. Registration")
    base_url = models.URLField(
        "base URL",
        max_length=2000,
        help_text="The link the partner gave you. You may add {{tracker.clickid}} and "
        "{{fields.X}} yourself.",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["spot", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        if self.partner_id and self.spot_id and self.partner.spot_id != self.spot_id:
            raise ValidationError({"partner": "This partner belongs to another spot."})
        unknown = links.unknown_link_macros(self.base_url)
        if unknown:
            raise ValidationError(
                {
                    "base_url": f"Unknown macro {unknown[0]}. Known: {{{{tracker.clickid}}}}, "
                    "{{fields.X}}."
                }
            )

    @property
    def final_url(self):
        """The base URL with the partner's click-id parameter carrying {{tracker.clickid}}."""
        param = self.partner.click_id_param if self.partner_id else ""
        return links.add_click_id(self.base_url, param)


class AdAccount(models.Model):
    """An ad account whose daily spend the workers pull from the network's reporting API."""

    FACEBOOK, TIKTOK = "facebook", "tiktok"
    NETWORKS = [(FACEBOOK, "Facebook Marketing API"), (TIKTOK, "TikTok Business API")]

    spot = models.ForeignKey(Spot, on_delete=models.CASCADE, related_name="ad_accounts")
    network = models.CharField(max_length=20, choices=NETWORKS)
    account_id = models.CharField(
        "ad account id",
        max_length=100,
        help_text="Facebook: act_<digits> (or the digits); TikTok: the advertiser id.",
    )
    access_token = models.CharField(
        max_length=1000,
        blank=True,
        help_text="A token that may read the account's insights or reports. Never shown "
        "again once saved; leave empty to keep it.",
    )
    currency = models.CharField(
        max_length=3,
        blank=True,
        help_text="The account's currency, when the API does not say it. Empty: the spot's.",
    )
    enabled = models.BooleanField(default=True)
    last_imported = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["spot", "network", "account_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["spot", "network", "account_id"], name="ad_account_once_per_spot"
            )
        ]

    def __str__(self):
        return f"{self.get_network_display()} {self.account_id}"
