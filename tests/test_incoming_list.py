"""The incoming log's list says why a postback was refused, and tells *updated* apart."""

from django.urls import reverse
from django.utils.html import escape

from postbacks.models import IncomingPostback

CHANGELIST = "admin:postbacks_incomingpostback_changelist"
REASON = (
    "clickid is '{sub1}', a macro the network did not fill in: fix the postback URL "
    "at the network so it sends the click id"
)


def stored(spot, status, error="", query="clickid=abc&tracker.event=sale"):
    return IncomingPostback.objects.create(
        token=str(spot.postback_token),
        spot=spot,
        method="GET",
        path="/api/postbacks/x/tracker-postback",
        query=query,
        status=status,
        error=error,
    )


def test_the_list_shows_the_reason_clipped_with_the_full_text_on_hover(admin_client, spot):
    stored(spot, IncomingPostback.REJECTED, REASON)
    text = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert '<th scope="col" class="column-error_short">' in text
    # The whole reason is in the cell (its tooltip and its clipped text).
    assert f'title="{escape(REASON)}"' in text
    assert "text-overflow:ellipsis" in text


def test_updated_is_its_own_status_shown_filtered_and_coloured(admin_client, spot):
    stored(spot, IncomingPostback.ACCEPTED)
    stored(spot, IncomingPostback.UPDATED, query="clickid=abc&tracker.event=sale&tid=1")
    stored(spot, IncomingPostback.REJECTED, "bad amount")
    page = admin_client.get(reverse(CHANGELIST))
    text = page.content.decode()
    assert 'class="incoming-status status-updated" style="color:#205493' in text
    assert 'class="incoming-status status-rejected" style="color:#ba2121' in text
    filtered = admin_client.get(reverse(CHANGELIST), {"status__exact": "updated"})
    assert [r.status for r in filtered.context["cl"].result_list] == ["updated"]
    choices = {
        c["display"]
        for spec in page.context["cl"].filter_specs
        if spec.title == "status"
        for c in spec.choices(page.context["cl"])
    }
    assert "Updated" in choices


def test_a_row_without_an_error_shows_a_dash(admin_client, spot):
    stored(spot, IncomingPostback.ACCEPTED)
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert '<td class="field-error_short">-</td>' in page
