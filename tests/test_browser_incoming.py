"""A network calls a running server with seed 003's URLs; the client's card shows it all."""

import pytest
import requests

from crm.models import Client, CustomField
from postbacks.models import IncomingPostback
from tracker.models import Spot

pytestmark = pytest.mark.browser


def test_the_client_card_shows_conversions_fields_and_system_messages(admin_page, live_server):
    spot = Spot.objects.create(name="Bot", slug="bot", answer_after_processing=True)
    CustomField.objects.create(spot=spot, key="last_deposit", type=CustomField.MONEY)
    CustomField.objects.create(spot=spot, key="user_id", type=CustomField.NUMBER)
    spot.goals.filter(token="dep").update(message_template="First deposit {sum} {currency}")
    spot.goals.filter(token="redep").update(message_template="Repeat deposit {sum} ({tid})")
    lead = Client.objects.create(spot=spot, name="Ann")
    base = f"{live_server.url}/api/postbacks/{spot.postback_token}/tracker-postback"
    calls = [
        f"tracker.event=registration&clickid={lead.click_id}",
        f"clickid={lead.click_id}&tracker.event=sale&tracker.cost=150.50&tracker.currency=usd"
        "&fields.last_deposit=150.50&fields.user_id=4242",
        f"tracker.event=resale&clickid={lead.click_id}&tracker.tid=ev-77&tracker.cost=30",
    ]
    for query in calls:
        answer = requests.get(f"{base}?{query}", timeout=10)
        assert answer.status_code == 200 and answer.json()["ok"], answer.text

    admin_page.goto(f"{live_server.url}/admin/crm/client/{lead.pk}/change/")
    conversions = admin_page.locator("#conversions-group tbody tr.has_original")
    assert conversions.count() == 3
    text = conversions.all_inner_texts()
    # Money to the cent, as people read it (8 places stay stored).
    assert any("First deposit (dep)" in row and "150.50" in row for row in text)
    assert not any("150.50000000" in row for row in text)
    assert any("Repeat deposit (redep)" in row and "ev-77" in row for row in text)
    assert any("Registration (reg)" in row for row in text)
    values = admin_page.locator(
        "#custom_values-group tr.has_original td.field-value textarea"
    ).evaluate_all("els => els.map(e => e.value)")
    assert sorted(values) == ["150.50", "4242"]
    messages = admin_page.locator(".chat-thread").inner_text()
    assert "First deposit 150.50 USD" in messages
    assert "Repeat deposit 30.00 (ev-77)" in messages


def test_an_unmatched_postback_is_replayed_from_its_log_page(admin_page, live_server):
    spot = Spot.objects.create(name="Bot", slug="bot", answer_after_processing=True)
    base = f"{live_server.url}/api/postbacks/{spot.postback_token}/tracker-postback"
    answer = requests.get(f"{base}?clickid=trk-late&tracker.event=registration", timeout=10)
    assert answer.status_code == 202 and answer.json()["status"] == "unmatched"
    lead = Client.objects.create(spot=spot, cl_id="trk-late")
    row = IncomingPostback.objects.get()

    admin_page.goto(f"{live_server.url}/admin/postbacks/incomingpostback/{row.pk}/change/")
    assert "clickid=trk-late&tracker.event=registration" in admin_page.inner_text("#content")
    admin_page.click("text=Replay this postback")
    admin_page.wait_for_selector(".messagelist")
    assert "Replayed: accepted." in admin_page.inner_text(".messagelist")
    assert lead.conversions.get().goal.token == "reg"
