from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from crm.links import client_links
from crm.models import ADVERT_KEYS, Client, Conversion, CustomField, CustomFieldValue, Message
from tracker.admin_utils import BigTableAdmin, ReadOnlyInline, copyable

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


class ConversionInline(ReadOnlyInline):
    model = Conversion
    fields = ["created", "goal", "amount", "currency", "status", "tid"]
    readonly_fields = fields
    ordering = ["-created"]


@admin.register(Client)
class ClientAdmin(BigTableAdmin):
    list_display = [
        "__str__",
        "click_id",
        "spot",
        "geo",
        "advert_campaign_id",
        "manager",
        "created",
    ]
    list_filter = ["spot", "geo", "manager", ("created", admin.DateFieldListFilter)]
    search_fields = ["=click_id", "=cl_id", "=user_id", "username", "name", "=player_id"]
    list_select_related = ["spot", "manager"]
    readonly_fields = ["click_id", "created", "thread", "registration_links"]
    raw_id_fields = ["manager"]
    form = ClientForm
    inlines = [CustomFieldValueInline, ConversionInline]
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


@admin.register(CustomField)
class CustomFieldAdmin(admin.ModelAdmin):
    list_display = ["key", "label", "type", "spot"]
    list_filter = ["spot", "type"]
    search_fields = ["key", "label"]
    list_select_related = ["spot"]


@admin.register(Conversion)
class ConversionAdmin(BigTableAdmin):
    list_display = ["created", "goal", "amount", "currency", "status", "client", "spot", "tid"]
    list_filter = ["status", "spot", "goal__token", ("created", admin.DateFieldListFilter)]
    search_fields = ["=tid", "=client__click_id", "=client__cl_id"]
    list_select_related = ["goal", "client", "spot"]
    raw_id_fields = ["client"]
    readonly_fields = ["spot", "created", "updated"]
    date_hierarchy = "created"

    def save_model(self, request, obj, form, change):
        obj.spot_id = obj.client.spot_id
        super().save_model(request, obj, form, change)


@admin.register(Message)
class MessageAdmin(BigTableAdmin):
    list_display = ["created", "kind", "short_text", "client", "author"]
    list_filter = ["kind", "client__spot"]
    search_fields = ["text", "=client__click_id"]
    list_select_related = ["client", "author"]
    raw_id_fields = ["client", "conversion"]
    readonly_fields = ["created", "author"]

    @admin.display(description="Text")
    def short_text(self, obj):
        return obj.text[:80]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.author = request.user
        super().save_model(request, obj, form, change)


from crm import admin_stats  # noqa: E402,F401  (registers the statistics page)
