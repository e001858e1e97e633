"""No admin form answers 500 to what a user can type (issue 22, point 5).

For every registered model admin whose add page the superuser can open, the
add form is posted as a browser would post it: empty, untouched, and as a
copy of an existing row with its inline rows as new rows, once and twice, so
each unique field and each inline's unique key meets a duplicate; and each
existing row's own page with its inline rows posted again as new rows. Every
answer must be the form again with its errors (200) or a redirect after saving
(302).
"""

from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.contrib.admin.options import InlineModelAdmin
from django.db import models
from django.forms.models import _get_foreign_key
from django.urls import reverse
from django.utils import timezone

from crm.models import Conversion, CustomField, ExchangeRate, Message
from postbacks.models import OutgoingPostback
from tests.test_admin import _Request
from tracker.models import PartnerPreset, Pixel, RegistrationLink
from tracker.presets import apply_preset, load_presets

FINE = (200, 302)


class FormReader(HTMLParser):
    """The name/value pairs a browser submits for the admin's change form
    (the <form> whose id ends in _form), the empty inline template rows left out."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pairs, self.inside = [], False
        self.textarea = self.select = None
        self.options = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("id") or "").endswith("_form"):
            self.inside = True
        if not self.inside:
            return
        if tag == "input":
            self.input(a)
        elif tag == "textarea":
            self.textarea = [a.get("name"), ""]
        elif tag == "select":
            self.select, self.options = a, []
        elif tag == "option" and self.select is not None:
            self.options.append((a.get("value", ""), "selected" in a))

    def input(self, a):
        kind = (a.get("type") or "text").lower()
        if kind in ("submit", "button", "image", "reset", "file") or not a.get("name"):
            return
        if kind in ("checkbox", "radio") and "checked" not in a:
            return
        default = "on" if kind in ("checkbox", "radio") else ""
        self.pairs.append((a["name"], a.get("value", default)))

    def handle_data(self, data):
        if self.textarea is not None:
            self.textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self.textarea is not None:
            name, text = self.textarea
            if name:
                # A browser drops the newline that follows <textarea>.
                self.pairs.append((name, text[1:] if text.startswith("\n") else text))
            self.textarea = None
        elif tag == "select" and self.select is not None:
            self.end_select()

    def end_select(self):
        name, chosen = self.select.get("name"), [v for v, on in self.options if on]
        if "multiple" not in self.select and not chosen and self.options:
            chosen = [self.options[0][0]]  # a browser submits the first option
        if name:
            self.pairs += [(name, v) for v in chosen]
        self.select = None

    def data(self):
        out = {}
        for name, value in self.pairs:
            if "__prefix__" not in name:
                out.setdefault(name, []).append(value)
        return out


def read_form(response):
    assert response.status_code == 200, response.status_code
    reader = FormReader()
    reader.feed(response.content.decode())
    return reader.data()


def inline_keys(model_admin):
    """Field names an inline row carries that tie it to its saved self or parent."""
    keys = {"id", "DELETE"}
    for inline in model_admin.inlines:
        if issubclass(inline, InlineModelAdmin):
            keys.add(_get_foreign_key(model_admin.model, inline.model, inline.fk_name).name)
    return keys


def as_new(data, model_admin, times=2, keep_saved=False):
    """Every inline row posted `times` times as a new row; keep_saved: the saved
    rows are posted as they are too (a change page)."""
    out, tied = dict(data), inline_keys(model_admin)
    for total_key in [k for k in data if k.endswith("-TOTAL_FORMS")]:
        prefix = total_key[: -len("-TOTAL_FORMS")]
        rows = []
        for n in range(int(data[total_key][0])):
            start = f"{prefix}-{n}-"
            keys = [k for k in data if k.startswith(start)]
            rows.append({k[len(start) :]: out.pop(k) for k in keys})
        saved = int(data[f"{prefix}-INITIAL_FORMS"][0]) if keep_saved else 0
        copies = rows[:saved] + [strip(row, tied) for row in rows] * times
        for n, row in enumerate(copies):
            out.update({f"{prefix}-{n}-{field}": value for field, value in row.items()})
        out[total_key] = [str(len(copies))]
        out[f"{prefix}-INITIAL_FORMS"] = [str(saved)]
    return out


def strip(row, tied):
    return {field: value for field, value in row.items() if field not in tied}


def unique_fields(model):
    names = {f.name for f in model._meta.fields if f.unique and not f.primary_key}
    for constraint in model._meta.constraints:
        names.update(getattr(constraint, "fields", ()) or ())
    for together in model._meta.unique_together:
        names.update(together)
    return names


def made_unique(data, model):
    """The main form's unique text fields changed, so the form itself passes
    and only the inline duplicates are left to meet."""
    out = dict(data)
    for name in unique_fields(model):
        field = model._meta.get_field(name)
        if isinstance(field, models.CharField) and name in out and out[name][0]:
            value = out[name][0]
            out[name] = [value[: field.max_length - 1] + ("X" if value.isupper() else "2")]
    return out


def add_admins():
    for model, model_admin in admin.site._registry.items():
        if model_admin.has_add_permission(_Request()):
            yield pytest.param(model, id=model._meta.label_lower)


@pytest.fixture
def rows(spot, lead, django_user_model):
    """At least one row of each model an admin edits, with inline rows of its own."""
    load_presets()
    partner = apply_preset(
        PartnerPreset.objects.get(slug="1win"),
        spot,
        registration_url="https://partner.example/signup?p=1",
    )
    CustomField.objects.create(spot=spot, key="country", label="Country")
    ExchangeRate.objects.create(day=timezone.localdate(), currency="EUR", rate=Decimal("0.9"))
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="t")
    OutgoingPostback.objects.create(spot=spot, name="Tracker", url="https://t.example/?c={tid}")
    conversion, _ = lead.record_conversion("sale", Decimal("10"), "USD", tid="t1")
    Message.objects.create(client=lead, kind=Message.MANAGER, text="Hi")
    assert RegistrationLink.objects.exists() and partner.postbacks.exists()
    assert Conversion.objects.filter(pk=conversion.pk).exists()
    return spot


def post(client, url, data):
    response = client.post(url, data)
    assert response.status_code in FINE, (url, response.status_code)
    return response


@pytest.mark.parametrize("model", list(add_admins()))
def test_no_add_form_answers_500_to_empty_or_duplicate_input(admin_client, rows, model):
    meta = model._meta
    add_url = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
    page = admin_client.get(add_url)
    model_admin = admin.site._registry[model]
    post(admin_client, add_url, {})
    post(admin_client, add_url, read_form(page))
    existing = model_admin.get_queryset(page.wsgi_request).first()
    if existing is None:
        return
    change_url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[existing.pk])
    change = admin_client.get(change_url)
    if change.status_code != 200:
        return
    copy = read_form(change)
    post(admin_client, add_url, as_new(copy, model_admin))
    # Past the main form's unique fields: the rows meet each other, or what
    # saving the new row makes by itself (a spot's default goals).
    for times in (1, 2):
        post(admin_client, add_url, made_unique(as_new(copy, model_admin, times), model))
    post(admin_client, change_url, as_new(copy, model_admin, times=1, keep_saved=True))


def test_the_named_duplicates_are_form_errors(admin_client, rows):
    """The duplicates a newcomer makes, each answered with its form and an error."""
    spot = rows
    goal = spot.goals.get(token="dep")
    partner = spot.partners.get()
    cases = [
        ("tracker", "goal", goal, {}),
        ("tracker", "partner", partner, {}),
        ("crm", "customfield", CustomField.objects.get(key="country"), {}),
        ("crm", "exchangerate", ExchangeRate.objects.get(), {}),
    ]
    for app, name, obj, extra in cases:
        model_admin = admin.site._registry[type(obj)]
        copy = read_form(admin_client.get(reverse(f"admin:{app}_{name}_change", args=[obj.pk])))
        response = post(
            admin_client,
            reverse(f"admin:{app}_{name}_add"),
            {**as_new(copy, model_admin), **extra},
        )
        assert response.status_code == 200, name
        assert response.context["errors"], name
    count = type(goal).objects.count()
    spot_admin = admin.site._registry[type(spot)]
    copy = read_form(admin_client.get(reverse("admin:tracker_spot_change", args=[spot.pk])))
    response = post(
        admin_client,
        reverse("admin:tracker_spot_add"),
        made_unique(as_new(copy, spot_admin), type(spot)),
    )
    assert response.status_code == 200
    assert "already means the goal" in response.content.decode()
    assert type(goal).objects.count() == count
