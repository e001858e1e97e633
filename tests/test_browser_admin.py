import pytest

from tracker.models import Spot

pytestmark = pytest.mark.browser


def test_an_admin_logs_in_and_sees_a_spots_incoming_url(admin_page, live_server):
    spot = Spot.objects.create(name="Bot", slug="bot")
    admin_page.goto(f"{live_server.url}/admin/tracker/spot/{spot.pk}/change/")
    url_box = admin_page.locator(".field-incoming_postback_url .copyable input")
    assert url_box.input_value() == (
        f"{live_server.url}/api/postbacks/{spot.postback_token}/tracker-postback"
    )
    goal_tokens = admin_page.locator(
        "#goals-group tr.form-row:not(.empty-form) td.field-token input"
    ).evaluate_all("els => els.map(e => e.value)")
    assert goal_tokens == ["reg", "dep", "redep", "lead"]
