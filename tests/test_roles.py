"""Who may read and who may change each admin page, custom view and action, by role.

The tables below say it; the tests check it against the admin as registered, and
a model, URL or action the admin gains without a line here fails
test_every_admin_page_view_and_action_has_a_line_here.
Roles: A anonymous, N staff in no group (the loner), M manager, L team lead, S superuser.
"""

import datetime
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.conf import settings as conf
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser, Group
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django_rq import stats_views
from django_rq import urls as rq_urls
from django_rq.models import Dashboard

from crm.models import CustomField, DailyStat, ExchangeRate
from crm.visibility import MANAGERS
from postbacks.models import Delivery, IncomingPostback
from tracker.admin_rq import QueueDashboardAdmin
from tracker.models import Partner, RegistrationLink

ROLES = {"A": "anonymous", "N": "loner", "M": "manager", "L": "lead", "S": "superuser"}
LETTER = {name: letter for letter, name in ROLES.items()}
STAFF = "NMLS"


# Model pages


@dataclass(frozen=True)
class Page:
    """Roles that may view, add, change and delete; `row` makes the object whose
    change, delete and history pages are opened (one the manager may see)."""

    view: str
    add: str
    change: str
    delete: str
    row: Callable | None


def made(label, **values):
    return lambda w: apps.get_model(label).objects.create(**values)


def ad_account(spot):
    return apps.get_model("tracker.adaccount").objects.create(
        spot=spot, network="facebook", account_id="act_1", access_token="secret"
    )


def device(label):
    return lambda w: apps.get_model(label).objects.create(user=w.superuser, name="phone")


def spend_row(w):
    return apps.get_model("crm.spend").objects.create(
        spot=w.spot, day=datetime.date(2024, 1, 2), source="file:x", amount=1, currency="USD"
    )


def spend_file(w):
    data = b"Day,Campaign name,Amount spent (USD)\n2026-03-02,c1,12.50\n"
    upload = SimpleUploadedFile("spend.csv", data, content_type="text/csv")
    return {"spot": w.spot.pk, "new_source": "Ads Manager", "file": upload, "_import": "1"}


REQUEST = {"user_agent": "ua", "ip_address": "10.0.0.1", "username": "x", "http_accept": "*/*"}
ATTEMPT = {**REQUEST, "get_data": "", "post_data": "", "failures_since_start": 1}

MODELS = {
    "auth.user": Page("S", "S", "S", "S", lambda w: w.team["bob"]),
    "auth.group": Page("S", "S", "S", "S", lambda w: Group.objects.get(name=MANAGERS)),
    "crm.client": Page("MLS", "LS", "MLS", "S", lambda w: w.own["client"]),
    "crm.conversion": Page("MLS", "S", "LS", "S", lambda w: w.own["conversion"]),
    "crm.message": Page("MLS", "MLS", "LS", "S", lambda w: w.own["message"]),
    "crm.customfield": Page("LS", "LS", "LS", "S", lambda w: CustomField.objects.get()),
    "crm.exchangerate": Page("S", "S", "S", "S", lambda w: w.rate),
    # Spend is written by clicks, files and ad networks only: read, or deleted by a superuser.
    "crm.spend": Page("LS", "", "", "S", spend_row),
    "crm.spendmapping": Page("LS", "LS", "LS", "S", made("crm.spendmapping", source="Ads")),
    # The statistics page; a row's own pages open for nobody (tested below).
    "crm.dailystat": Page("MLS", "", "", "", None),
    "tracker.spot": Page("LS", "LS", "LS", "S", lambda w: w.spot),
    "tracker.goal": Page("LS", "LS", "LS", "S", lambda w: w.spot.goals.get(token="dep")),
    "tracker.partner": Page("LS", "LS", "LS", "S", lambda w: w.partner),
    "tracker.registrationlink": Page("LS", "LS", "LS", "S", lambda w: w.link),
    "tracker.partnerpreset": Page("LS", "", "S", "S", lambda w: w.presets["1win"]),
    "tracker.adaccount": Page("LS", "LS", "LS", "S", lambda w: ad_account(w.spot)),
    "postbacks.outgoingpostback": Page("LS", "LS", "LS", "S", lambda w: w.own["postback"]),
    "postbacks.delivery": Page("MLS", "", "", "", lambda w: w.own["delivery"]),
    "postbacks.incomingpostback": Page("MLS", "", "", "", lambda w: w.own["incoming"]),
    # The sign-in's apps, when installed: superusers only, as their own admins allow.
    "axes.accessattempt": Page("S", "", "S", "S", made("axes.accessattempt", **ATTEMPT)),
    "axes.accesslog": Page("S", "", "S", "S", made("axes.accesslog", **REQUEST)),
    "axes.accessfailurelog": Page("S", "", "S", "S", made("axes.accessfailurelog", **REQUEST)),
    "otp_totp.totpdevice": Page("S", "S", "S", "S", device("otp_totp.totpdevice")),
    "otp_static.staticdevice": Page("S", "S", "S", "S", device("otp_static.staticdevice")),
    # Registered only with REDIS_URL; it has no rows (see the RQ tests at the end).
    "django_rq.dashboard": Page("S", "", "S", "", None),
}
PAGES = ["changelist", "add", "change", "delete", "history"]
OBJECT_PAGES = {"change", "delete", "history"}


def may_open(line, page):
    return {"add": line.add, "delete": line.delete}.get(page, line.view)


# Custom views


@dataclass(frozen=True)
class View:
    """Roles whose GET opens it (None: POST only, a GET is 405) and roles whose
    POST changes the `touches` models (None: no POST changes anything)."""

    read: str | None
    change: str | None
    args: Callable = lambda w: []
    form: Callable = lambda w: {}
    touches: tuple = ()
    ready: Callable = lambda w: None  # puts a row where a POST would change it


def hold(w):
    Delivery.objects.filter(pk=w.own["delivery"].pk).update(status=Delivery.HELD)


def fail(w):
    Delivery.objects.filter(pk=w.own["delivery"].pk).update(status=Delivery.FAILED)


def unmatch(w):
    row = IncomingPostback.objects.filter(pk=w.own["incoming"].pk)
    row.update(status=IncomingPostback.UNMATCHED)


def aim_at_receiver(w):
    w.fixture("outgoing")
    w.own["postback"].url = w.fixture("receiver").url + "/pb?c={click_id}"
    w.own["postback"].save()


def pixel_at_receiver(w):
    w.fixture("outgoing")
    url = w.fixture("receiver").url
    w.fixture("settings").POSTBACKS_PIXEL_URLS = {n: url for n in ("facebook", "google")}
    w.spot.goals.filter(token="dep").update(facebook_event="Purchase")
    w.own["pixel"], _ = w.spot.pixels.get_or_create(
        network="facebook", defaults={"pixel_id": "1", "access_token": "t"}
    )


def today(w):
    day = timezone.localdate().isoformat()
    return {"since": day, "until": day}


NEW_PASSWORD = {"password1": "Brand-new-pass-77", "password2": "Brand-new-pass-77"}
# django-otp's pages of a device's secret; the settings may hide them from everyone.
OTP_SECRETS = "" if getattr(conf, "OTP_ADMIN_HIDE_SENSITIVE_DATA", False) else "S"

VIEWS = {
    "tracker_spot_regenerate_token": View(
        None, "LS", lambda w: [w.spot.pk], touches=("tracker.spot",)
    ),
    "tracker_spot_regenerate_api_key": View(
        None, "LS", lambda w: [w.spot.pk], touches=("tracker.spot",)
    ),
    "tracker_spot_signing_secret": View(
        None, "LS", lambda w: [w.spot.pk], touches=("tracker.spot",)
    ),
    "tracker_partner_signing_secret": View(
        None, "LS", lambda w: [w.partner.pk], touches=("tracker.partner",)
    ),
    "postbacks_outgoingpostback_rotate_secret": View(
        None, "LS", lambda w: [w.own["postback"].pk], touches=("postbacks.outgoingpostback",)
    ),
    "tracker_partner_from_preset": View(
        "LS",
        "LS",
        form=lambda w: {"preset": w.presets["1win"].pk, "spot": w.spot.pk},
        touches=("tracker.partner",),
    ),
    "postbacks_incomingpostback_replay": View(
        None,
        "LS",
        lambda w: [w.own["incoming"].pk],
        touches=("postbacks.incomingpostback",),
        ready=unmatch,
    ),
    "postbacks_outgoingpostback_test": View(
        "LS",
        "LS",
        lambda w: [w.own["postback"].pk],
        form=lambda w: {"conversion": w.own["conversion"].pk},
        touches=("postbacks.deliveryattempt",),
        ready=aim_at_receiver,
    ),
    "tracker_pixel_test": View(
        "LS",
        "LS",
        lambda w: [w.own["pixel"].pk],
        touches=("postbacks.deliveryattempt",),
        ready=pixel_at_receiver,
    ),
    "postbacks_delivery_resend_failed": View(
        "LS", "LS", form=today, touches=("postbacks.delivery",), ready=fail
    ),
    "crm_dailystat_csv": View("MLS", None),
    "crm_spend_upload": View("LS", "LS", form=spend_file, touches=("crm.spend",)),
    # The statistics page's column chooser and report token: each user's own settings.
    "crm_dailystat_columns": View(
        None, "MLS", form=lambda w: {"columns": ["leads"]}, touches=("crm.reportsettings",)
    ),
    "crm_dailystat_token": View(None, "MLS", touches=("crm.reportsettings",)),
    "auth_user_password_change": View(
        "S", "S", lambda w: [w.team["bob"].pk], form=lambda w: NEW_PASSWORD, touches=("auth.user",)
    ),
    "otp_totp_totpdevice_config": View(
        OTP_SECRETS, None, lambda w: [w.rows["otp_totp.totpdevice"].pk]
    ),
    "otp_totp_totpdevice_qrcode": View(
        OTP_SECRETS, None, lambda w: [w.rows["otp_totp.totpdevice"].pk]
    ),
}

# The RQ dashboard's pages (when registered): superusers only; its JSON keeps
# django-rq's own rule, any staff (or a bearer token).
QUEUE = {"queue_index": 0}
JOB = {**QUEUE, "job_id": "j1"}
CRON = {"connection_index": 0, "scheduler_name": "c"}
RQ_VIEWS = {
    "django_rq_home_json": ("NMLS", {}),
    "django_rq_metrics": ("NMLS", {}),  # with prometheus_client installed
    "django_rq_home": ("S", {}),
    "django_rq_jobs": ("S", QUEUE),
    "django_rq_queue_details": ("S", QUEUE),
    "django_rq_finished_jobs": ("S", QUEUE),
    "django_rq_failed_jobs": ("S", QUEUE),
    "django_rq_delete_failed_jobs": ("S", QUEUE),
    "django_rq_scheduled_jobs": ("S", QUEUE),
    "django_rq_started_jobs": ("S", QUEUE),
    "django_rq_deferred_jobs": ("S", QUEUE),
    "django_rq_clear": ("S", QUEUE),
    "django_rq_requeue_all": ("S", QUEUE),
    "django_rq_job_detail": ("S", JOB),
    "django_rq_result_detail": ("S", {**JOB, "result_id": "r1"}),
    "django_rq_delete_job": ("S", JOB),
    "django_rq_requeue_job": ("S", JOB),
    "django_rq_enqueue_job": ("S", JOB),
    "django_rq_stop_job": ("S", JOB),
    "django_rq_confirm_action": ("S", QUEUE),
    "django_rq_actions": ("S", QUEUE),
    "django_rq_workers": ("S", QUEUE),
    "django_rq_worker_details": ("S", {**QUEUE, "key": "w1"}),
    "django_rq_scheduler_jobs": ("S", {"scheduler_index": 0}),
    "django_rq_cron_scheduler_detail": ("S", CRON),
    "django_rq_cron_job_detail": ("S", {**CRON, "cron_job_name": "j"}),
}

# The admin site's own pages.
SITE = {
    "index": STAFF,
    "login": "ANMLS",
    "logout": "ANMLS",
    "password_change": STAFF,
    "password_change_done": STAFF,
    "jsi18n": STAFF,
    "two_factor": STAFF,  # the sign-in's second-factor page
    # These three answer per app, object or field: their own tests below.
    "app_list": STAFF,
    "view_on_site": STAFF,
    "autocomplete": STAFF,
    # Pages of the menu that are no model's list (tracker/site.py add_page).
    "postbacks_status": "LS",
}
# The SITE pages the menu links to, as the menu names them ("app_label.page").
MENU_PAGES = {"postbacks.status": "postbacks_status"}
PER_ITEM = {"app_list", "view_on_site", "autocomplete"}


# Actions


@dataclass(frozen=True)
class Action:
    roles: str
    form: Callable = lambda w: {}  # what running it for real needs
    ready: Callable = lambda w: None


# (model, action): roles that may run it. delete_selected: the model's delete column.
ACTIONS = {
    ("crm.client", "assign_to_manager"): Action(
        "LS", lambda w: {"apply": "1", "manager": w.team["bob"].pk}
    ),
    ("tracker.spot", "regenerate_tokens"): Action("LS"),
    ("tracker.adaccount", "import_spend_now"): Action("LS"),
    ("crm.conversion", "mark_approved"): Action("LS"),
    ("crm.conversion", "mark_pending"): Action("LS"),
    ("crm.conversion", "mark_rejected"): Action("LS"),
    ("postbacks.delivery", "resend_selected"): Action("LS", ready=hold),
    ("postbacks.delivery", "drop_held"): Action("LS", ready=hold),
    ("postbacks.incomingpostback", "replay_selected"): Action("LS", ready=unmatch),
    ("axes.accessattempt", "cleanup_expired_attempts"): Action("S"),
}


def all_actions():
    found = dict(ACTIONS)
    for label, line in MODELS.items():
        found[(label, "delete_selected")] = Action(line.delete, lambda w: {"post": "yes"})
    return {key: act for key, act in found.items() if has_action(*key)}


# Reading the admin


def registered(label):
    return any(m._meta.label_lower == label for m in admin.site._registry)


def model_admin(label):
    return admin.site._registry[apps.get_model(label)]


def url_name(label, page):
    return f"{label.replace('.', '_')}_{page}"


def url_names():
    return {url.name for m in admin.site._registry.values() for url in m.get_urls() if url.name}


def has_action(label, name):
    return registered(label) and name in {n for _, n, _ in model_admin(label)._get_base_actions()}


def ours(name):
    return name.replace("_", ".").split(".")[0] in {"auth", "crm", "tracker", "postbacks"}


# The world


def login(client, user):
    client.force_login(user)
    if apps.is_installed("django_otp.plugins.otp_static"):
        # A second factor given, as django_otp.login() records it, so that
        # tracker/site.py lets every role in even with TWO_FACTOR_REQUIRED.
        from django_otp import DEVICE_ID_SESSION_KEY

        factor = apps.get_model("otp_static.staticdevice").objects.create(user=user, name="key")
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = factor.persistent_id
        session.save()
    return client


@pytest.fixture
def world(request, spot, team, book, presets, admin_user):
    """The team, each manager's book, and one object of every registered model (`rows`)."""
    w = types.SimpleNamespace(
        fixture=request.getfixturevalue,
        spot=spot,
        team=team,
        own={**book["ann"], "postback": book["ann"]["delivery"].postback},
        own_stat=DailyStat.objects.filter(manager_pk=team["ann"].pk)[0],
        presets=presets,
        superuser=admin_user,
        partner=Partner.objects.create(spot=spot, name="Net", slug="net"),
        link=RegistrationLink.objects.create(
            spot=spot, name="Registration", base_url="https://net.example/reg"
        ),
        rate=ExchangeRate.objects.create(day=datetime.date(2024, 1, 2), currency="EUR", rate=1),
    )
    w.users = {
        "anonymous": None,
        "loner": team["loner"],
        "manager": team["ann"],
        "lead": team["lead"],
        "superuser": admin_user,
    }
    w.rows = {
        label: line.row(w) for label, line in MODELS.items() if registered(label) and line.row
    }
    return w


@pytest.fixture
def as_role(client, world):
    def sign_in(role):
        user = world.users[role]
        return login(client, user) if user else client

    return sign_in


def snapshot(labels):
    models = [apps.get_model(label) for label in labels]
    # RQ's dashboard has no table: nothing of it can change.
    return {
        m._meta.label: list(m.objects.order_by("pk").values()) for m in models if m._meta.managed
    }


def said(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def is_login_redirect(response, site="admin"):
    login_url = reverse(f"{site}:login")
    return response.status_code == 302 and response["Location"].startswith(login_url)


def assert_refused(response, role, custom=False, site="admin"):
    """Anonymous: to the login page. Staff: 403 (404 for a row not theirs to see).
    A custom view or action may instead send anyone back into the admin with a message."""
    if custom and response.status_code == 302 and not is_login_redirect(response):
        home = (reverse("admin:index"), reverse(f"{site}:index"))
        assert response["Location"].startswith(home), response["Location"]
        assert said(response), "a refusal without a message"
    elif role == "anonymous":
        assert is_login_redirect(response), (response.status_code, response.get("Location"))
    else:
        assert response.status_code in (403, 404), response.status_code


# The tables cover the admin


def test_every_admin_page_view_and_action_has_a_line_here():
    missing = []
    for model, each in admin.site._registry.items():
        label = model._meta.label_lower
        if label not in MODELS:
            missing.append(f"the model {label} (MODELS)")
        known = {url_name(label, page) for page in PAGES} | set(VIEWS) | set(RQ_VIEWS)
        # Unnamed: the redirect of /<pk>/ to its change page.
        missing += [
            f"the URL {url.name} (VIEWS)"
            for url in each.get_urls()
            if url.name and url.name not in known
        ]
        for _, name, _ in each._get_base_actions():
            if name != "delete_selected" and (label, name) not in ACTIONS:
                missing.append(f"the action {name} of {label} (ACTIONS)")
    for url in admin.site.get_urls():
        # Unnamed: the catch-all that answers 404 (or the login page) for no page.
        if isinstance(url, URLPattern) and url.name and url.name not in SITE:
            missing.append(f"the admin site's URL {url.name} (SITE)")
    assert not missing, "\n".join(f"add a line for {m} to tests/test_roles.py" for m in missing)


def test_no_line_here_names_a_page_of_ours_the_admin_no_longer_has():
    stale = [label for label in MODELS if ours(label) and not registered(label)]
    stale += [name for name in VIEWS if ours(name) and name not in url_names()]
    stale += [f"{a} of {m}" for m, a in ACTIONS if ours(m) and not has_action(m, a)]
    assert not stale, f"remove the lines for {stale} from tests/test_roles.py"


def test_the_tables_let_change_only_those_who_may_read():
    for label, line in MODELS.items():
        assert set(line.add + line.change + line.delete) <= set(line.view), label
    for name, view in VIEWS.items():
        if view.read is not None and view.change is not None:
            assert set(view.change) <= set(view.read), name
    for (label, name), act in all_actions().items():
        assert set(act.roles) <= set(MODELS[label].view), (label, name)


def test_no_admin_asks_for_autocomplete():
    # The autocomplete URL then answers only what the lists show (see below).
    asking = [m._meta.label for m, each in admin.site._registry.items() if each.autocomplete_fields]
    assert not asking


# Model pages


def page_params():
    for label, line in MODELS.items():
        if not registered(label):
            continue
        for page in PAGES:
            if page in OBJECT_PAGES and line.row is None:
                continue
            for role in LETTER:
                name = url_name(label, page)
                yield pytest.param(label, page, role, id=f"{name}-{role}")


@pytest.mark.parametrize(("label", "page", "role"), list(page_params()))
def test_a_model_page_opens_for_exactly_the_roles_of_its_line(world, as_role, label, page, role):
    line = MODELS[label]
    args = [world.rows[label].pk] if page in OBJECT_PAGES else []
    url = reverse(f"admin:{url_name(label, page)}", args=args)
    c = as_role(role)
    response = c.get(url)
    if LETTER[role] not in may_open(line, page):
        assert_refused(response, role)
        if page == "delete":  # nor by confirming it
            before = snapshot([label])
            assert_refused(c.post(url, {"post": "yes"}), role)
            assert snapshot([label]) == before
        return
    assert response.status_code == 200
    if page == "change":
        assert response.context["has_change_permission"] == (LETTER[role] in line.change)


def test_a_preset_is_read_only_even_where_it_may_be_changed(world, as_role):
    url = reverse("admin:tracker_partnerpreset_change", args=[world.presets["1win"].pk])
    response = as_role("superuser").get(url)
    assert response.context["has_change_permission"]
    assert list(response.context["adminform"].form.fields) == []


@pytest.mark.parametrize("role", ["manager", "lead", "superuser"])
@pytest.mark.parametrize("whose", ["ann", "bob", "team"])
def test_a_statistics_row_is_read_only_through_the_report(world, as_role, whose, role):
    manager_pk = world.team[whose].pk if whose != "team" else 0
    row = DailyStat.objects.filter(manager_pk=manager_pk)[0]
    c = as_role(role)
    for page in ("change", "history", "delete"):
        response = c.get(reverse(f"admin:crm_dailystat_{page}", args=[row.pk]))
        assert response.status_code in (403, 404), page


# Custom views


def view_params(only_changing=False):
    for name, view in VIEWS.items():
        if name in url_names() and not (only_changing and view.change is None):
            for role in LETTER:
                yield pytest.param(name, role, id=f"{name}-{role}")


@pytest.mark.parametrize(("name", "role"), list(view_params()))
def test_a_custom_view_reads_for_exactly_the_roles_of_its_line(world, as_role, name, role):
    view = VIEWS[name]
    view.ready(world)
    response = as_role(role).get(reverse(f"admin:{name}", args=view.args(world)))
    if role == "anonymous":
        assert_refused(response, role)
    elif view.read is None:
        assert response.status_code == 405  # it only changes, by POST
    elif LETTER[role] in view.read:
        assert response.status_code == 200
    else:
        assert_refused(response, role, custom=True)


@pytest.mark.parametrize(("name", "role"), list(view_params(only_changing=True)))
def test_a_custom_view_changes_for_exactly_the_roles_of_its_line(world, as_role, name, role):
    view = VIEWS[name]
    view.ready(world)
    url = reverse(f"admin:{name}", args=view.args(world))
    c = as_role(role)
    before = snapshot(view.touches)
    response = c.post(url, view.form(world))
    if LETTER[role] in view.change:
        assert response.status_code in (200, 302)
        assert snapshot(view.touches) != before, f"the {role}'s POST changed nothing"
    else:
        assert_refused(response, role, custom=True)
        assert snapshot(view.touches) == before


# Actions


def action_params():
    for label, name in all_actions():
        for role in LETTER:
            yield pytest.param(label, name, role, id=f"{label}.{name}-{role}")


def offered(response):
    form = response.context.get("action_form") if response.status_code == 200 else None
    return {choice for choice, _ in form.fields["action"].choices if choice} if form else set()


@pytest.mark.parametrize(("label", "name", "role"), list(action_params()))
def test_an_action_is_offered_to_and_run_by_exactly_the_roles_of_its_line(
    world, as_role, label, name, role
):
    act = all_actions()[(label, name)]
    act.ready(world)
    c = as_role(role)
    changelist = reverse(f"admin:{url_name(label, 'changelist')}")
    listing = c.get(changelist)
    may = LETTER[role] in act.roles
    assert (name in offered(listing)) == may
    if listing.status_code == 200:
        request = RequestFactory().get(changelist)
        request.user = world.users[role] or AnonymousUser()
        assert (name in model_admin(label).get_actions(request)) == may
    if may or not apps.get_model(label)._meta.managed:
        return  # what it does: each action's own tests; RQ's dashboard has no rows
    before = snapshot([label])
    row = world.rows.get(label)  # the statistics have no row of their own to pick
    chosen = {"action": name, "_selected_action": [row.pk if row else 1], **act.form(world)}
    response = c.post(changelist, chosen)
    assert snapshot([label]) == before
    if listing.status_code == 200:  # sees the list, may not run this
        assert response.status_code == 302
        assert said(response), "the refusal says nothing"
    else:
        assert_refused(response, role, custom=True)


# The admin site's own pages


def rights(letter):
    """The models a role has any right on: those the index shows it."""
    return {
        label
        for label, line in MODELS.items()
        if registered(label) and letter in line.view + line.add + line.change + line.delete
    }


def site_params():
    names = {url.name for url in admin.site.get_urls() if isinstance(url, URLPattern)}
    for name in SITE:
        if name in names and name not in PER_ITEM:
            for role in LETTER:
                yield pytest.param(name, role, id=f"{name}-{role}")


@pytest.mark.parametrize(("name", "role"), list(site_params()))
def test_a_page_of_the_admin_site_opens_for_exactly_the_roles_of_its_line(
    world, as_role, name, role
):
    c = as_role(role)
    if name == "logout":  # by POST; Django's admin sends the signed-out to its index
        response = c.post(reverse("admin:logout"))
        assert response.status_code == (302 if role == "anonymous" else 200)
        assert is_login_redirect(c.get(reverse("admin:index")))
        return
    response = c.get(reverse(f"admin:{name}"))
    if LETTER[role] not in SITE[name]:
        assert_refused(response, role)
    elif name == "login" and role != "anonymous":
        assert response.status_code == 302  # signed in already: on to the index
        assert response["Location"] == reverse("admin:index")
    else:
        assert response.status_code == 200


@pytest.mark.parametrize("role", list(LETTER))
def test_the_index_lists_exactly_the_models_a_role_has_a_right_on(world, as_role, role):
    response = as_role(role).get(reverse("admin:index"))
    if role == "anonymous":
        assert is_login_redirect(response)
        return
    # The home page's menu groups models by use, not by app: read each model's own label.
    shown = {
        m["page"] if "page" in m else m["model"]._meta.label_lower
        for app in response.context["app_list"]
        for m in app["models"]
    }
    pages = {page for page, name in MENU_PAGES.items() if LETTER[role] in SITE[name]}
    assert shown == rights(LETTER[role]) | pages


@pytest.mark.parametrize("role", list(LETTER))
def test_an_apps_page_opens_for_the_roles_the_index_shows_it_to(world, as_role, role):
    c = as_role(role)
    for app_label in sorted({m._meta.app_label for m in admin.site._registry}):
        response = c.get(reverse("admin:app_list", args=[app_label]))
        if role == "anonymous":
            assert is_login_redirect(response)
        elif any(label.startswith(f"{app_label}.") for label in rights(LETTER[role])):
            assert response.status_code == 200, app_label
        else:
            assert response.status_code == 404, app_label


@pytest.mark.parametrize("role", list(LETTER))
def test_view_on_site_leads_nowhere_and_tells_no_row_from_a_missing_one(world, as_role, role):
    c = as_role(role)
    for label, row in world.rows.items():
        assert not hasattr(row, "get_absolute_url"), f"{label} links out: who may follow it?"
        kind = ContentType.objects.get_for_model(row).pk
        missing = uuid.uuid4() if isinstance(row.pk, uuid.UUID) else 10**9
        for pk in (row.pk, missing):
            response = c.get(reverse("admin:view_on_site", args=[kind, pk]))
            if role == "anonymous":
                assert is_login_redirect(response)
            else:
                assert response.status_code == 404, (label, pk)


def relations():
    """Every relation of a registered model to a registered model."""
    for model in admin.site._registry:
        for f in model._meta.get_fields():
            if f.is_relation and f.concrete and f.related_model in admin.site._registry:
                yield model, f


@pytest.mark.parametrize("role", list(LETTER))
def test_autocomplete_answers_only_what_the_lists_show(world, as_role, role):
    # No admin asks for it, but Django's view answers any relation whose target's
    # admin has search fields: with the rows that admin's list shows the role.
    c = as_role(role)
    request = RequestFactory().get("/")
    request.user = world.users[role] or AnonymousUser()
    for model, f in relations():
        target = admin.site._registry[f.related_model]
        meta = model._meta
        response = c.get(
            reverse("admin:autocomplete"),
            {"app_label": meta.app_label, "model_name": meta.model_name, "field_name": f.name},
        )
        where = (meta.label, f.name)
        if role == "anonymous":
            assert is_login_redirect(response), where
        elif not target.get_search_fields(request):
            assert response.status_code == 404, where
        elif LETTER[role] not in MODELS[f.related_model._meta.label_lower].view:
            assert response.status_code == 403, where
        else:
            assert response.status_code == 200, where
            got = {r["id"] for r in response.json()["results"]}
            assert got == {
                str(pk) for pk in target.get_queryset(request).values_list("pk", flat=True)
            }


# The RQ dashboard. Without REDIS_URL (the tests) the admin does not register
# it: it is checked on a site of its own, its views stubbed (there is no Redis).

urlpatterns = []


def stub(request, *args, **kwargs):
    return HttpResponse("stub")


class Stubs:
    def __getattr__(self, name):
        return stub


@pytest.fixture
def rq_site(monkeypatch, settings):
    monkeypatch.setattr(rq_urls, "views", Stubs())
    monkeypatch.setattr(rq_urls, "cron_views", Stubs())
    monkeypatch.setattr(stats_views, "stats", stub)
    monkeypatch.setattr(stats_views, "get_statistics", lambda *a, **k: {"queues": []})
    site = import_string(apps.get_app_config("admin").default_site)(name="rq_admin")
    site.register(Dashboard, QueueDashboardAdmin)
    urlpatterns[:] = [path("admin/", admin.site.urls), path("rq-admin/", site.urls)]
    settings.ROOT_URLCONF = __name__
    yield site
    urlpatterns.clear()


def test_the_rq_dashboard_has_a_line_for_each_of_its_pages(rq_site):
    names = {url.name for url in rq_site._registry[Dashboard].get_urls() if url.name}
    pages = {url_name("django_rq.dashboard", page) for page in PAGES}
    missing = names - pages - set(RQ_VIEWS)
    assert not missing, f"add lines for {missing} to RQ_VIEWS in tests/test_roles.py"


def rq_params():
    for name in RQ_VIEWS:
        if name == "django_rq_metrics" and stats_views.RQCollector is None:
            continue  # django-rq has that page only with prometheus_client installed
        for role in LETTER:
            yield pytest.param(name, role, id=f"{name}-{role}")


@pytest.mark.parametrize(("name", "role"), list(rq_params()))
def test_an_rq_dashboard_page_opens_for_exactly_the_roles_of_its_line(
    world, as_role, rq_site, name, role
):
    may, kwargs = RQ_VIEWS[name]
    response = as_role(role).get(reverse(f"rq_admin:{name}", kwargs=kwargs))
    if LETTER[role] in may:
        assert response.status_code == 200
    elif name in ("django_rq_home_json", "django_rq_metrics"):
        assert response.status_code == 401  # no bearer token
    elif role == "anonymous":
        assert is_login_redirect(response, "rq_admin")
    else:
        assert response.status_code == 403


def rq_page_params():
    for page in PAGES:
        for role in LETTER:
            yield pytest.param(page, role, id=f"django_rq_dashboard_{page}-{role}")


@pytest.mark.parametrize(("page", "role"), list(rq_page_params()))
def test_an_rq_dashboard_model_page_opens_for_exactly_the_roles_of_its_line(
    world, as_role, rq_site, page, role
):
    line = MODELS["django_rq.dashboard"]
    args = [1] if page in OBJECT_PAGES else []
    response = as_role(role).get(reverse(f"rq_admin:django_rq_dashboard_{page}", args=args))
    if role == "anonymous":
        assert is_login_redirect(response, "rq_admin")
    elif LETTER[role] not in may_open(line, page):
        assert_refused(response, role, custom=True, site="rq_admin")
    elif page in OBJECT_PAGES:
        # There are no rows: "doesn't exist", back to the admin.
        assert response.status_code == 302 and said(response)
    else:
        assert response.status_code == 200
