from django.contrib import admin

from crm.models import ADVERT_KEYS, Client, Conversion, CustomField, CustomFieldValue, Message
from tracker.admin_utils import BigTableAdmin, ReadOnlyInline


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


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["created", "kind", "text", "author"]
    readonly_fields = ["created", "author"]
    extra = 1

    def has_change_permission(self, request, obj=None):
        return False  # the thread is a record: messages are added, not rewritten


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
    readonly_fields = ["click_id", "created"]
    raw_id_fields = ["manager"]
    inlines = [CustomFieldValueInline, ConversionInline, MessageInline]
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
        ("Attribution", {"fields": [f"advert_{k}" for k in ADVERT_KEYS], "classes": ["collapse"]}),
        ("Entry parameters", {"fields": ["params"], "classes": ["collapse"]}),
    ]

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for obj in instances:
            if isinstance(obj, Message) and not obj.pk:
                obj.author = request.user
                obj.kind = obj.kind or Message.MANAGER
            obj.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()


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
