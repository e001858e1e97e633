"""Who sees which clients: the team's one visibility rule, in one place.

Superusers and holders of crm.view_all_clients (the *Team leads* group) see
every client. Everyone else, *Managers* and staff in neither group alike,
sees only the clients assigned to them (Client.manager) and those clients'
rows: conversions, messages, custom field values, deliveries, the incoming
postbacks that named them, and their own figures in the statistics.

Why plain Django groups, one permission and a queryset filter rather than
django-guardian or django-rules: the rule is "your own clients, or all of
them", and who owns a client is already a column. Per-object grants
(guardian) would add a permission row per client, written on every
assignment and joined on every list, and could drift from Client.manager;
predicate rules (rules) decide one object at a time, so every list would
still need this same filter. One WHERE on the indexed manager_id column
cannot disagree with the assignment and costs no extra query.
"""

from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import Http404

from crm.models import Client, Conversion

# Made by the data migration postbacks/0005 with the permissions of postbacks/team.py.
MANAGERS, TEAM_LEADS = "Managers", "Team leads"
VIEW_ALL = "crm.view_all_clients"
ASSIGN = "crm.assign_client"


def sees_all(user):
    return user.is_active and (user.is_superuser or user.has_perm(VIEW_ALL))


def may_assign(user):
    return user.is_active and user.has_perm(ASSIGN)


def visible(user, queryset, path=""):
    """`queryset` narrowed to the rows `user` may see; `path` leads to the client
    ("" for clients, "client__" for their conversions, "conversion__client__"...)."""
    if sees_all(user):
        return queryset
    if not user.is_authenticated:
        return queryset.none()
    return queryset.filter(**{f"{path}manager": user.pk})


def visible_clients(user):
    return visible(user, Client.objects.all())


def own_figures(user):
    """The manager whose figures the statistics show to `user`: None for everyone's."""
    return None if sees_all(user) else user.pk


def manager_choices():
    """Who can be given clients: active users who may log in to the admin."""
    return get_user_model().objects.filter(is_active=True, is_staff=True).order_by("username")


class VisibleRowsMixin:
    """For a ModelAdmin of clients or of their rows: lists, cards, actions and
    the client and conversion pickers show only what the user may see, and a
    card of someone else's client is a 404 (not the admin's redirect)."""

    client_path = "client__"

    def get_queryset(self, request):
        return visible(request.user, super().get_queryset(request), self.client_path)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # The same answer whether it exists for someone else or not at all.
            raise Http404(f"No {self.opts.verbose_name} {object_id!r} for you.")
        return obj

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Client:
            kwargs["queryset"] = visible_clients(request.user)
        elif db_field.related_model is Conversion:
            kwargs["queryset"] = visible(request.user, Conversion.objects.all(), "client__")
        if "queryset" in kwargs and db_field.name in self.raw_id_fields:
            kwargs["widget"] = VisibleRawIdWidget(
                db_field.remote_field, self.admin_site, kwargs["queryset"], kwargs.get("using")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class VisibleRawIdWidget(ForeignKeyRawIdWidget):
    """A raw-id box whose label (the row's name beside the id, also for an id
    given in the URL as ?client=<pk>) is looked up among the user's own rows:
    Django's looks in the whole table, so counting ids up would read them."""

    def __init__(self, rel, admin_site, queryset, using=None):
        super().__init__(rel, admin_site, using=using)
        self.queryset = queryset

    def label_and_url_for_value(self, value):
        key = self.rel.get_related_field().name
        try:
            mine = self.queryset.filter(**{key: value}).exists()
        except (ValueError, ValidationError):
            mine = False
        return super().label_and_url_for_value(value) if mine else ("", "")
