"""The main pages of the admin as a media buyer opens them on a laptop (1366 x 768)
and a desktop (1920 x 1080), with real-sized data: long names, many goals,
failing postbacks. No page may scroll sideways at 1366 px: a wide table
scrolls inside its own frame. Screenshots go to $SCREENSHOT_DIR when set."""

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from crm.models import Client
from postbacks.models import Delivery, IncomingPostback, OutgoingPostback
from tracker.models import Goal, Pixel, Spot

pytestmark = pytest.mark.browser

PASSWORD = "layout-browser-pass-1"
SIZES = [(1366, 768), (1920, 1080)]
LONG = "Brazil spring lookalike audience casino bot with a rather long name"


@pytest.fixture
def shots(tmp_path):
    return Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)


@pytest.fixture
def office(transactional_db, django_user_model):
    """Two spots whose goals share names, twelve goals on one, clients with long
    names and big amounts, an unmatched postback and a failing delivery."""
    django_user_model.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    big = Spot.objects.create(name=LONG, slug="brazil", currency="BRL")
    small = Spot.objects.create(name="Poker landing", slug="poker")
    for k in range(8):
        Goal.objects.create(
            spot=big, name=f"Level {k} reached in the game", token=f"level{k}", show_sum=True
        )
    # The same goal on the other spot: statistics over both must tell them apart.
    Goal.objects.create(spot=small, name="Level 3 reached in the game", token="level3")
    Pixel.objects.create(spot=big, network="facebook", pixel_id="1234567890", access_token="x" * 40)
    postback = OutgoingPostback.objects.create(
        spot=big,
        name="Keitaro of the team with a long descriptive name",
        url="https://keitaro.example/postback?subid={cl_id}&status={status}&payout={sum}"
        "&currency={currency}&tid={tid}&campaign={advert__campaign_id}",
    )
    postback.goals.set(big.goals.all())
    for spot in (big, small):
        for k in range(4):
            client = Client.objects.create(
                spot=spot,
                name=f"Client {k} {spot.slug} with a rather long display name here",
                geo="BR",
                advert_campaign_id=f"campaign-{k}-spring-sale-lookalike-audience-2025",
                cl_id=f"keitaro-click-{k}-{spot.slug}",
            )
            client.record_conversion("reg")
            conversion, _ = client.record_conversion(
                "sale", Decimal("12345.5"), "USD", tid=f"{spot.slug}-a{k}"
            )
            client.record_conversion(
                "level3", Decimal("0.12345678"), "USD", tid=f"{spot.slug}-l{k}"
            )
            Delivery.objects.create(
                conversion=conversion,
                spot=spot,
                postback=postback if spot == big else None,
                status=Delivery.PENDING,
                attempts=3,
                next_attempt=timezone.now() + timezone.timedelta(hours=1),
                last_error="connection refused by keitaro.example:443 after 5.0 s " * 3,
                last_http_status=None,
            )
    IncomingPostback.objects.create(
        spot=big,
        token=str(big.postback_token),
        method="GET",
        path=f"/api/postbacks/{big.postback_token}/tracker-postback",
        query="clickid=unknown-click-id-from-a-network-0123456789&tracker.event=sale"
        "&tracker.cost=100.50&tracker.currency=usd&tracker.tid=abcdef0123456789abcdef",
        status=IncomingPostback.UNMATCHED,
        error="No client has the click id unknown-click-id-from-a-network-0123456789 yet.",
        click_id="unknown-click-id-from-a-network-0123456789",
    )
    return {"big": big, "small": small, "postback": postback, "client": Client.objects.first()}


def pages(office):
    return {
        "home": "/admin/",
        "spots": "/admin/tracker/spot/",
        "spot": f"/admin/tracker/spot/{office['big'].pk}/change/",
        "clients": "/admin/crm/client/",
        "client": f"/admin/crm/client/{office['client'].pk}/change/",
        "statistics": "/admin/crm/dailystat/?group=campaign&then=geo",
        "statistics-by-day": "/admin/crm/dailystat/?group=day",
        "incoming": "/admin/postbacks/incomingpostback/",
        "deliveries": "/admin/postbacks/delivery/",
        "outgoing": f"/admin/postbacks/outgoingpostback/{office['postback'].pk}/change/",
    }


def log_in(browser, live_server, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return context, page


def page_width(page):
    return page.evaluate("() => document.documentElement.scrollWidth")


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}" for w, _ in SIZES])
def test_every_main_page_fits_the_screen_without_sideways_scrolling(
    browser, live_server, office, shots, width, height
):
    context, page = log_in(browser, live_server, width, height)
    too_wide = {}
    try:
        for name, url in pages(office).items():
            response = page.goto(f"{live_server.url}{url}")
            assert response.status == 200, name
            page.screenshot(path=shots / f"layout-{name}-{width}.png", full_page=True)
            if name == "spot":  # each inline up close: readable without sideways scrolling
                for k, group in enumerate(page.locator(".inline-group").all()):
                    group.screenshot(path=shots / f"layout-spot-inline{k}-{width}.png")
            if page_width(page) > width:
                too_wide[name] = page_width(page)
    finally:
        context.close()
    assert not too_wide, f"pages wider than {width} px: {too_wide}"


def test_a_wide_table_scrolls_in_its_own_frame_with_its_first_column_fixed(
    browser, live_server, office
):
    context, page = log_in(browser, live_server, 1366, 768)
    try:
        page.goto(f"{live_server.url}/admin/crm/dailystat/?group=campaign&then=geo")
        frame = page.locator(".table-frame").first
        sizes = frame.evaluate("f => [f.scrollWidth, f.clientWidth]")
        assert sizes[0] > sizes[1], "twelve goals' columns make the statistics wider than a laptop"
        first = page.locator("#stats-table tbody tr td").first
        before = first.bounding_box()["x"]
        frame.evaluate("f => { f.scrollLeft = 400; }")
        assert first.bounding_box()["x"] == before  # the campaign stays in sight
    finally:
        context.close()


def test_an_empty_install_starts_from_the_home_pages_first_step(
    browser, live_server, transactional_db, django_user_model, shots
):
    django_user_model.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    context, page = log_in(browser, live_server, 1366, 768)
    try:
        page.screenshot(path=shots / "layout-home-empty-1366.png", full_page=True)
        assert page_width(page) <= 1366
        steps = page.locator("#getting-started li")
        assert steps.count() == 4 and page.locator("#getting-started li.done").count() == 0
        steps.first.locator("a").click()
        page.wait_for_url("**/admin/tracker/spot/add/")
    finally:
        context.close()
