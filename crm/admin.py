from django import forms
from django.conf import settings
from django.contrib import admin
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    DecimalField,
    IntegerField,
    Max,
    OuterRef,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest
from django.template.response import TemplateResponse
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join

from crm import rates, values
from crm.links import client_links
from crm.models import (
    ADVERT_KEYS,
    UNRATED,
    Client,
    Conversion,
    CustomField,
    CustomFieldValue,
    ExchangeRate,
    Message,
)
from crm.visibility import VisibleRowsMixin, manager_choices, may_assign, sees_all
from tracker.admin_utils import BigTableAdmin, ReadOnlyInline, copyable, log_change
from tracker.models import STATUS_APPROVED, STATUS_PENDING, STATUS_REJECTED

# The chat shows the latest messages; older ones stay in the Messages list.
THREAD_SIZE = 200


class ClientForm(forms.ModelForm):
    note = forms.CharField(
        label="New note",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80, "placeholder": "Write a note…"}),
        help_text="Added to the thread as a manager message when you save.",
    )

    class Meta:
        model = Client
        fields = ["spot"]  # the admin's fieldsets choose the rest


BUBBLE_STYLE = {
    Message.SYSTEM: "align-self:center;background:#f1f1f1;color:#444;font-size:12px",
    Message.MANAGER: "align-self:flex-end;background:#d9f2d9",
    Message.CLIENT: "align-self:flex-start;background:#e3ecf7",
}


class CustomFieldInline(admin.TabularInline):
    model = CustomField
    fields = ["key", "label", "type"]
    extra = 0


class CustomFieldValueInline(admin.TabularInline):
    model = CustomFieldValue
    fields = ["field", "value", "updated"]
    readonly_fields = ["updated"]
    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Offer only the fields of the client's own spot.
        if db_field.name == "field":
            client_id = request.resolver_match.kwargs.get("object_id")
            client = Client.objects.filter(pk=client_id).first() if client_id else None
            if client is not None:
                kwargs["queryset"] = CustomField.objects.filter(spot_id=client.spot_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class AmountColumns:
    """Amounts as people read them (12,345.50: cents and thousands; 8 places stay
    stored and in the API), and in the reporting currency."""

    @admin.display(description="Amount", ordering="amount")
    def amount_shown(self, obj):
        return values.money_number(obj.amount)

    @admin.display(description="Reported", ordering="reported_amount")
    def reported(self, obj):
        if obj.reported_amount is None:
            return "no rate yet"
        return values.money_text(obj.reported_amount, settings.REPORTING_CURRENCY)


class ConversionInline(AmountColumns, ReadOnlyInline):
    model = Conversion
    fields = ["created", "goal", "amount_shown", "currency", "reported", "status", "tid"]
    readonly_fields = fields
    ordering = ["-created"]


# The furthest goal a client reached, by its approved conversions.
GOAL_RANKS = {"reg": 1, "dep": 2, "redep": 3}
RANK_GOALS = {rank: token for token, rank in GOAL_RANKS.items()}


def list_annotations():
    """The client list's computed columns, as correlated subqueries: a page of
    50 clients costs the same few queries as a page of one."""
    approved = (
        Conversion.objects.filter(client=OuterRef("pk"), status=STATUS_APPROVED)
        .order_by()
        .values("client")
    )
    rank = Case(
        *(When(goal__token=token, then=Value(n)) for token, n in GOAL_RANKS.items()),
        output_field=IntegerField(),
    )
    last_message = Subquery(
        Message.objects.filter(client=OuterRef("pk"))
        .order_by()
        .values("client")
        .annotate(at=Max("created"))
        .values("at")
    )
    last_conversion = Subquery(approved.annotate(at=Max("created")).values("at"))
    return {
        "goal_rank": Subquery(
            approved.filter(goal__token__in=GOAL_RANKS).annotate(r=Max(rank)).values("r")
        ),
        # Revenue goals only, in the reporting currency; amounts still without a rate apart.
        "revenue": Subquery(
            approved.filter(goal__revenue=True).annotate(s=Sum("reported_amount")).values("s")
        ),
        "unrated": Subquery(
            approved.filter(UNRATED, goal__revenue=True).annotate(n=Count("pk")).values("n")
        ),
        # GREATEST is NULL with a NULL argument on SQLite: each side falls back to the other.
        "last_event": Greatest(
            Coalesce(last_conversion, last_message), Coalesce(last_message, last_conversion)
        ),
    }


def short_time(moment):
    """ "Mar 1 12:00" this year, "2025-03-01" before: a narrow column either way."""
    if moment is None:
        return "-"
    local = timezone.localtime(moment)
    if local.year == timezone.localdate().year:
        return dateformat.format(local, "M j H:i")
    return local.date().isoformat()


def clipped(text, size):
    """Text cut to `size` characters, the whole of it in the tooltip."""
    if len(text) <= size:
        return text or "-"
    return format_html('<span title="{}">{}…</span>', text, text[: size - 1])


class GoalReachedFilter(admin.SimpleListFilter):
    title = "goal reached"
    parameter_name = "goal"

    def lookups(self, request, model_admin):
        return [
            ("none", "None yet"),
            ("reg", "reg or further"),
            ("dep", "dep or further"),
            ("redep", "redep"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(goal_rank__isnull=True)
        if value in GOAL_RANKS:
            return queryset.filter(goal_rank__gte=GOAL_RANKS[value])
        return queryset


class AssignForm(forms.Form):
    manager = forms.ModelChoiceField(queryset=manager_choices(), empty_label=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["manager"].queryset = manager_choices()  # fresh per request


@admin.register(Client)
class ClientAdmin(VisibleRowsMixin, BigTableAdmin):
    client_path = ""
    list_display = [
        "client",
        "spot_name",
        "geo",
        "campaign",
        "goal",
        "revenue",
        "last_event",
        "manager",
        "created_at",
    ]
    list_filter = [
        "spot",
        GoalReachedFilter,
        "geo",
        ("manager", admin.RelatedOnlyFieldListFilter),
        ("created", admin.DateFieldListFilter),
    ]
    search_fields = ["=click_id", "=cl_id", "=user_id", "username", "name", "=player_id"]
    list_select_related = ["spot", "manager"]
    readonly_fields = ["click_id", "created", "thread", "registration_links"]
    form = ClientForm
    inlines = [CustomFieldValueInline, ConversionInline]
    actions = ["assign_to_manager"]
    date_hierarchy = "created"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "spot",
                    "click_id",
                    "cl_id",
                    "name",
                    "username",
                    "user_id",
                    "player_id",
                    "geo",
                    "manager",
                    "created",
                ]
            },
        ),
        ("Chat", {"fields": ["thread", "note"]}),
        ("Registration links", {"fields": ["registration_links"]}),
        ("Attribution", {"fields": [f"advert_{k}" for k in ADVERT_KEYS]}),
        (
            "Browser and ad network ids",
            {
                "fields": [("ip", "user_agent"), "page_url", ("fbclid", "fbc", "fbp")]
                + [("ttclid", "gclid"), ("ga", "yclid", "ym_uid")],
                "classes": ["collapse"],
                "description": "What pixels send ad networks to match the user on.",
            },
        ),
        ("Entry parameters", {"fields": ["params"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**list_annotations())

    def changelist_view(self, request, extra_context=None):
        # The widest list of the admin fits a 1366-px screen when the app list
        # (one click away in the breadcrumbs) leaves its width to the table.
        extra_context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        # A manager's list holds only their own clients: the column would say "you".
        return shown if sees_all(request.user) else [c for c in shown if c != "manager"]

    def get_list_filter(self, request):
        shown = super().get_list_filter(request)
        if sees_all(request.user):
            return shown
        return [f for f in shown if not (isinstance(f, tuple) and f[0] == "manager")]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields if may_assign(request.user) else [*fields, "manager"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "manager":
            kwargs["queryset"] = manager_choices()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_assign_permission(self, request):
        return may_assign(request.user)

    @admin.display(description="Client", ordering="name")
    def client(self, obj):
        shown = obj.name or obj.username
        if not shown:
            return format_html("<code>{}…</code>", obj.click_id[:10])
        return clipped(shown, 22)

    @admin.display(description="Spot", ordering="spot__name")
    def spot_name(self, obj):
        return clipped(obj.spot.name, 18)

    @admin.display(description="Campaign", ordering="advert_campaign_id")
    def campaign(self, obj):
        return clipped(obj.advert_campaign_id, 14)

    # Sorted with "none" as the lowest value on every database (PostgreSQL puts
    # NULLs first in descending order, SQLite last).
    @admin.display(description="Goal", ordering=Coalesce("goal_rank", Value(0)))
    def goal(self, obj):
        return RANK_GOALS.get(obj.goal_rank, "-")

    @admin.display(
        description="Revenue", ordering=Coalesce("revenue", Value(0), output_field=DecimalField())
    )
    def revenue(self, obj):
        if obj.revenue is None and not obj.unrated:
            return "-"
        total = values.money_text(obj.revenue or 0, settings.REPORTING_CURRENCY)
        if not obj.unrated:
            return total
        return format_html(
            '<span title="{} amount(s) without an exchange rate yet">{} +{}?</span>',
            obj.unrated,
            total,
            obj.unrated,
        )

    @admin.display(description="Last event", ordering=Coalesce("last_event", "created"))
    def last_event(self, obj):
        return short_time(obj.last_event)

    @admin.display(description="Created", ordering="created")
    def created_at(self, obj):
        return short_time(obj.created)

    @admin.action(description="Assign to manager…", permissions=["assign"])
    def assign_to_manager(self, request, queryset):
        form = AssignForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            manager = form.cleaned_data["manager"]
            moved = assign(Client.objects.filter(pk__in=queryset.values("pk")), manager)
            log_change(request, queryset, f"Assigned to {manager}.")
            self.message_user(request, f"Assigned {moved} client(s) to {manager}.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Assign clients to a manager",
            "opts": self.opts,
            "form": form,
            "clients": queryset.order_by("pk"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/crm/client/assign_manager.html", context)

    @admin.display(description="Messages")
    def thread(self, obj):
        if not obj.pk:
            return "-"
        latest = obj.messages.select_related("author").order_by("-created", "-id")[:THREAD_SIZE]
        messages = list(reversed(latest))
        if not messages:
            return format_html('<div class="chat-thread empty">{}</div>', "No messages yet.")
        bubbles = format_html_join(
            "",
            '<div class="chat-msg chat-{}" style="max-width:70%;margin:4px 0;padding:6px 10px;'
            'border-radius:10px;{}"><small style="opacity:.7">{} · {}</small>'
            '<div style="white-space:pre-wrap">{}</div></div>',
            (
                (
                    m.kind,
                    BUBBLE_STYLE.get(m.kind, ""),
                    m.get_kind_display() + (f" {m.author}" if m.author_id else ""),
                    f"{m.created:%Y-%m-%d %H:%M}",
                    m.text,
                )
                for m in messages
            ),
        )
        return format_html(
            '<div class="chat-thread" style="display:flex;flex-direction:column;'
            'max-height:420px;overflow-y:auto;min-width:480px">{}</div>',
            bubbles,
        )

    @admin.display(description="For this client")
    def registration_links(self, obj):
        if not obj.pk:
            return "-"
        links = client_links(obj)
        if not links:
            return "The spot has no registration links yet."
        return format_html_join(
            "",
            '<div class="client-link"><strong>{}</strong><br>{}</div>',
            ((link.name, copyable(url, size=100)) for link, url in links),
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        note = form.cleaned_data.get("note", "").strip()
        if note:
            Message.objects.create(client=obj, kind=Message.MANAGER, text=note, author=request.user)


def assign(clients, manager):
    """Give `clients` to `manager` one by one, so the statistics move with them."""
    moved = 0
    with transaction.atomic():
        for client in clients.exclude(manager=manager).select_for_update():
            client.manager = manager
            client.save(update_fields=["manager"])
            moved += 1
    return moved


@admin.register(CustomField)
class CustomFieldAdmin(admin.ModelAdmin):
    list_display = ["key", "label", "type", "spot"]
    list_filter = ["spot", "type"]
    search_fields = ["key", "label"]
    list_select_related = ["spot"]


def set_status(conversions, status):
    """Give each of `conversions` `status`, one by one as a postback would, so
    each change makes its events (Conversion.save_edit). Returns those changed."""
    changed = []
    for pk in conversions.exclude(status=status).values_list("pk", flat=True):
        with transaction.atomic():
            # Read under its lock: a postback's change meanwhile is kept, not overwritten.
            conversion = Conversion.objects.select_for_update().filter(pk=pk).first()
            if conversion is None or conversion.status == status:
                continue
            conversion.status = status
            if conversion.save_edit():
                changed.append(conversion)
    return changed


def status_action(status, description):
    """An action that sets `status` on the chosen conversions."""

    @admin.action(description=description, permissions=["change"])
    def action(modeladmin, request, queryset):
        changed = set_status(queryset, status)
        log_change(request, changed, f"Marked {status}.")
        modeladmin.message_user(
            request,
            f"Marked {len(changed)} conversion(s) {status}; each change goes to their "
            "postbacks and pixels as a network's postback would.",
        )

    action.__name__ = f"mark_{status}"
    return action


@admin.register(Conversion)
class ConversionAdmin(AmountColumns, VisibleRowsMixin, BigTableAdmin):
    list_display = [
        "created",
        "goal",
        "amount_shown",
        "currency",
        "reported",
        "status",
        "client",
        "spot",
        "tid",
    ]
    list_filter = ["status", "spot", "goal__token", ("created", admin.DateFieldListFilter)]
    search_fields = ["=tid", "=client__click_id", "=client__cl_id"]
    list_select_related = ["goal__spot", "client", "spot"]  # a goal is named with its spot
    raw_id_fields = ["client"]
    readonly_fields = ["spot", "reported", "created", "updated"]
    date_hierarchy = "created"
    # A partner's reconciliation (a month's chargebacks) entered in one go.
    actions = [
        status_action(STATUS_APPROVED, "Mark as approved"),
        status_action(STATUS_PENDING, "Mark as pending"),
        status_action(STATUS_REJECTED, "Mark as rejected (a chargeback)"),
    ]

    def save_model(self, request, obj, form, change):
        obj.spot_id = obj.client.spot_id
        # As a network's postback: a status or amount set here (a chargeback
        # entered by hand) reaches the partner, the pixels and the chat.
        obj.save_edit()


@admin.register(Message)
class MessageAdmin(VisibleRowsMixin, BigTableAdmin):
    list_display = ["created", "kind", "short_text", "client", "author"]
    list_filter = ["kind", "client__spot"]
    search_fields = ["text", "=client__click_id"]
    list_select_related = ["client", "author"]
    raw_id_fields = ["client", "conversion"]
    readonly_fields = ["created", "author"]

    @admin.display(description="Text")
    def short_text(self, obj):
        return obj.text[:80]

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        # System messages are the tracker's own (a goal reached); a manager
        # posting one would put words in the system's mouth in the client's chat.
        if db_field.name == "kind" and not may_post_system(request.user):
            kwargs["choices"] = [c for c in Message.KINDS if c[0] != Message.SYSTEM]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.author = request.user
        super().save_model(request, obj, form, change)


def may_post_system(user):
    """Team leads (who may edit messages) and superusers; not managers."""
    return user.has_perm("crm.change_message")


def merged(rows):
    """{currency: earliest day} of rate rows."""
    since = {}
    for row in rows:
        since[row["currency"]] = min(row["day"], since.get(row["currency"], row["day"]))
    return since


class ExchangeRateForm(forms.ModelForm):
    class Meta:
        model = ExchangeRate
        fields = ["day", "currency", "rate"]

    def clean(self):
        data = super().clean()
        # The unique key holds `base`, which the form does not edit: check it here.
        base = self.instance.base or settings.REPORTING_CURRENCY
        taken = ExchangeRate.objects.filter(
            base=base, currency=data.get("currency"), day=data.get("day")
        ).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(
                f"There is a rate of {data['currency']} on {data['day']} already: edit that one."
            )
        return data


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    form = ExchangeRateForm
    list_display = ["day", "currency", "rate_shown", "base"]
    list_filter = ["currency", "base"]
    date_hierarchy = "day"
    search_fields = ["=currency"]

    @admin.display(description="Rate", ordering="rate")
    def rate_shown(self, obj):
        return f"1 {obj.base} = {values.plain(obj.rate)} {obj.currency}"

    # A new, changed or removed rate revalues the conversions and spend of its
    # currency from its day on: in the background (postbacks/loops/periodic.py),
    # never in this request.
    def save_model(self, request, obj, form, change):
        old = ExchangeRate.objects.filter(pk=obj.pk).values("currency", "day").first()
        super().save_model(request, obj, form, change)
        touched = [old] if old else []
        if not old or form.has_changed():
            rates.announce(merged([*touched, {"currency": obj.currency, "day": obj.day}]))

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        rates.announce({obj.currency: obj.day})

    def delete_queryset(self, request, queryset):
        gone = list(queryset.values("currency", "day"))
        super().delete_queryset(request, queryset)
        rates.announce(merged(gone))

    def changelist_view(self, request, extra_context=None):
        extra = {
            "subtitle": f"Per one {settings.REPORTING_CURRENCY} (the reporting currency); "
            "fetched daily from the ECB by the workers, or import files with "
            "manage.py import_rates."
        }
        return super().changelist_view(request, {**extra, **(extra_context or {})})


# Registers the statistics page, and the spend list with its upload.
from crm import admin_spend, admin_stats  # noqa: E402,F401
