"""Other trackers' macro names (seeds 001 and 004) paste as written: each one
sends a value, or is refused on save saying why it means nothing here."""

import datetime
import html
import re
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.macros import KNOWN, MEANINGLESS
from crm.models import Client, Conversion, CustomField, CustomFieldValue
from postbacks.delivery import attempts
from postbacks.delivery.fanout import accept
from postbacks.models import OutgoingPostback
from tests.receiver import drain
from tracker.models import Partner

pytestmark = pytest.mark.usefixtures("outgoing")

SEEDS = Path("/work/shared/seeds")


def seed_004_names():
    """The macro names of seed 004's order-level table, read from the seed itself."""
    [path] = SEEDS.glob("004_*.txt")
    names = re.findall(r"^\| `\{(\w+)\}`", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert len(names) > 60 and "CampaignId" in names and "IpAddressPlain" in names
    return names


def query_of(names):
    return "&".join(f"{n}={{{n}}}" for n in names)


def postback_for(spot, names, base="https://partner.example/pb"):
    return OutgoingPostback(spot=spot, name="Seed", url=f"{base}?{query_of(names)}")


def test_seed_004_names_render_with_values_in_the_preview_or_are_refused_with_why(spot):
    names = seed_004_names()
    accepted = [n for n in names if n not in MEANINGLESS]
    for name in ("CampaignId", "ActionId", "Payout", "Currency", "EventDate", "Status"):
        assert name in accepted
    postback = postback_for(spot, accepted)
    postback.full_clean()
    postback.save()
    query = parse_qs(urlsplit(attempts.preview(postback).url).query, keep_blank_values=True)
    empty = [n for n in accepted if not query[n][0]]
    assert empty == []
    for name in (n for n in names if n in MEANINGLESS):
        with pytest.raises(ValidationError) as e:
            postback_for(spot, [name]).full_clean()
        [message] = e.value.message_dict["url"]
        assert message.startswith(f"{{{name}}} has no meaning here: ")


def test_every_known_macro_has_a_value_in_the_preview_page(admin_client, spot):
    CustomField.objects.create(spot=spot, key="last_deposit", type=CustomField.MONEY)
    names = [*KNOWN, "params__utm_source", "fields__last_deposit", "fields__nickname"]
    postback = postback_for(spot, names)
    postback.full_clean()
    postback.save()
    query = parse_qs(urlsplit(attempts.preview(postback).url).query, keep_blank_values=True)
    assert [n for n in names if not query[n][0]] == []
    assert query["click"] == query["click_id"] and query["adid"] == query["advert__ad_id"]
    assert query["fields__last_deposit"] == ["100.00"]
    page = admin_client.get(reverse("admin:postbacks_outgoingpostback_test", args=[postback.pk]))
    text = html.unescape(page.content.decode())
    assert page.status_code == 200
    for shown in ("&ip=203.0.113.7&", "&ua=Mozilla", "&id=1&", "&CampaignId=campaign-id-1&"):
        assert shown in text


def test_seed_001_lead_form_sends_the_clients_phone(spot, receiver):
    # Seed 001's AlterCPA example, as written but for the host.
    url = (
        receiver.url + "/api/wm/push.json?id=TOKEN&offer=1&flow=2&name={name}&phone={phone}"
        "&ip={ip}&country={geo}&sub1={click}"
    )
    postback = OutgoingPostback(spot=spot, name="AlterCPA", url=url, all_users=True)
    postback.full_clean()
    postback.save()
    by_param = Client.objects.create(
        spot=spot, name="Ann", geo="DE", ip="198.51.100.4", params={"phone": "+49 30 111"}
    )
    by_field = Client.objects.create(spot=spot, name="Bob", params={"phone": "+1 old"})
    field = CustomField.objects.create(spot=spot, key="phone")
    CustomFieldValue.objects.create(client=by_field, field=field, value="+1 555 0100")
    for client in (by_param, by_field):
        accept(client, "reg")
    drain()
    got = [parse_qs(urlsplit(r.path).query) for r in receiver.wait_for(2)]
    by_name = {q["name"][0]: q for q in got}
    assert by_name["Ann"]["phone"] == ["+49 30 111"]
    assert by_name["Ann"]["sub1"] == [by_param.click_id]
    assert by_name["Ann"]["ip"] == ["198.51.100.4"] and by_name["Ann"]["country"] == ["DE"]
    # The phone the partner's postback wrote into the card wins over the entry one.
    assert by_name["Bob"]["phone"] == ["+1 555 0100"]


def test_seed_004_names_carry_the_events_own_values(spot, receiver):
    partner = Partner.objects.create(spot=spot, name="Win Partners", slug="win")
    client = Client.objects.create(
        spot=spot,
        cl_id="trk-9",
        partner=partner,
        advert_campaign_id="cmp-7",
        page_url="https://land.example/a?b=1",
    )
    names = [
        "CampaignId",
        "ActionId",
        "Payout",
        "Currency",
        "EventDate",
        "CreationDate",
        "MediaPartnerId",
        "MediaPartnerName",
        "StatusDetail",
        "DeltaPayout",
        "SharedId",
        "Oid",
        "ReferringDomain",
        "LandingPageUrl",
    ]
    base = receiver.url + "/pb"
    postback = OutgoingPostback.objects.create(
        spot=spot, name="Impact style", url=f"{base}?{query_of(names)}"
    )
    postback.full_clean()
    first, _, _ = accept(client, "dep", amount=Decimal("70"), currency="EUR", tid="o-1")
    drain()
    # Made yesterday, charged back now: the change's event date is today's.
    yesterday = first.created - datetime.timedelta(days=1)
    Conversion.objects.filter(pk=first.pk).update(created=yesterday)
    accept(client, "dep", amount=Decimal("50"), tid="o-1", status="rejected")
    drain()
    new, change = [parse_qs(urlsplit(r.path).query) for r in receiver.wait_for(2)]
    assert new["CampaignId"] == ["cmp-7"] and new["ActionId"] == [str(first.pk)]
    assert new["Payout"] == ["70.00"] and new["Currency"] == ["EUR"]
    assert new["MediaPartnerId"] == ["win"] and new["MediaPartnerName"] == ["Win Partners"]
    assert new["SharedId"] == ["trk-9"] and new["Oid"] == ["o-1"]
    assert new["ReferringDomain"] == ["land.example"]
    assert new["LandingPageUrl"] == ["https://land.example/a?b=1"]
    assert new["DeltaPayout"] == ["70.00"] and "StatusDetail" not in new  # empty: a new one
    when = datetime.datetime.fromisoformat(new["EventDate"][0])
    assert abs(when - first.created) < datetime.timedelta(seconds=1)
    assert change["CreationDate"] == [yesterday.astimezone(datetime.UTC).isoformat("T", "seconds")]
    changed = datetime.datetime.fromisoformat(change["EventDate"][0])
    assert abs(changed - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(seconds=30)
    assert change["StatusDetail"] == ["approved -> rejected"]
    assert change["DeltaPayout"] == ["-20.00"] and change["Payout"] == ["50.00"]


@pytest.mark.parametrize(
    "template, said",
    [
        # An unknown name is still refused with its name, next to a seed's.
        (
            "{Foo}&l={LockingDate}",
            [
                "{LockingDate} has no meaning here: conversions are not locked",
                "Unknown macro {Foo}.",
            ],
        ),
        ("{campaignid}", ["Unknown macro {campaignid} ({campaignid} is written {CampaignId})."]),
        ("{deviceModel}", ["{deviceModel} has no meaning here: clients come from bots"]),
        ("{Text2}", ["{Text2} has no meaning here: a conversion carries named custom fields"]),
        (
            '{join(items, i, "sku{i}={i.sku}", "&", "?")}',
            ["has no meaning here: a conversion has no items"],
        ),
    ],
)
def test_a_name_without_meaning_is_refused_naming_it(spot, template, said):
    postback = OutgoingPostback(spot=spot, name="x", url="https://a.example/?x=" + template)
    with pytest.raises(ValidationError) as e:
        postback.full_clean()
    for words in said:
        assert words in e.value.message_dict["url"][0]
    goal = spot.goals.get(token="dep")
    goal.message_template = "Deposit " + template
    with pytest.raises(ValidationError) as e:
        goal.full_clean()
    for words in said:
        assert words in e.value.message_dict["message_template"][0]


def test_a_goals_message_takes_seed_names_too(spot, lead):
    goal = spot.goals.get(token="dep")
    goal.message_template = "Deposit {Payout} {Currency} ({phone}, {EventDate})"
    goal.full_clean()
