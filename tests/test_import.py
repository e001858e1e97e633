from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from crm.models import Client, Conversion
from tracker.models import Partner


def write(tmp_path, text, name="rows.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_conversions_import_by_click_id_or_cl_id_and_reject_bad_rows(tmp_path, lead, capsys):
    path = write(
        tmp_path,
        "subid,payout,tid,status\n"
        f"{lead.click_id},50,t1,approved\n"
        "trk-1,20,t2,confirmed\n"
        "nobody,10,t3,approved\n"
        f"{lead.click_id},abc,t4,approved\n"
        f"{lead.click_id},5,t5,weird\n"
        ",5,t6,approved\n"
        f"{lead.click_id},50,t1,approved\n",
    )
    call_command("import_conversions", path)
    rows = Conversion.objects.filter(client=lead).order_by("id")
    assert [(c.goal.token, c.amount, c.tid) for c in rows] == [
        ("dep", Decimal("50.00"), "t1"),
        ("redep", Decimal("20.00"), "t2"),
    ]
    out = capsys.readouterr()
    assert "2 conversion(s) created." in out.out
    assert "1 duplicate(s), counted once." in out.out
    assert "4 row(s) rejected:" in out.out
    assert "line 4: no client with click id or cl_id 'nobody'" in out.out
    assert "line 5: 'abc' is not a number" in out.out
    assert "line 6: unknown status 'weird'" in out.out
    assert "line 7: no subid" in out.out
    assert "100% 7/7" in out.err


def test_a_later_row_with_the_same_tid_updates_the_status(tmp_path, lead):
    call_command(
        "import_conversions",
        write(tmp_path, f"subid,payout,tid,status\n{lead.click_id},9,t,hold\n"),
    )
    assert Conversion.objects.get().status == "pending"
    call_command(
        "import_conversions",
        write(tmp_path, f"subid,payout,tid,status\n{lead.click_id},9,t,declined\n"),
    )
    assert Conversion.objects.get().status == "rejected"


def test_a_partners_status_map_applies_on_import(tmp_path, spot, lead):
    Partner.objects.create(
        spot=spot, name="P", slug="p", status_map="ok = approved\nnope = rejected"
    )
    path = write(tmp_path, f"subid,payout,tid,status\n{lead.click_id},9,t,nope\n")
    call_command("import_conversions", path, "--partner", "p")
    assert Conversion.objects.get().status == "rejected"


def test_an_event_column_or_option_chooses_the_goal(tmp_path, lead):
    path = write(tmp_path, f"subid,payout,tid,status,event\n{lead.click_id},,r1,,registration\n")
    call_command("import_conversions", path)
    # Without a tid a second reg is the same registration: counted once, as reg.
    path = write(tmp_path, f"subid,payout,tid,status\n{lead.click_id},,,\n", "b.csv")
    call_command("import_conversions", path, "--event", "reg")
    assert list(Conversion.objects.values_list("goal__token", "tid")) == [("reg", "r1")]


def test_a_missing_file_or_spot_is_a_clear_error(tmp_path, spot):
    with pytest.raises(CommandError, match="Could not read"):
        call_command("import_conversions", str(tmp_path / "none.csv"))
    with pytest.raises(CommandError, match="No spot with the slug 'x'"):
        call_command("import_clients", write(tmp_path, "name\n"), "--spot", "x")


def test_clients_import_with_attribution_and_params_skipping_known_users(tmp_path, spot, capsys):
    Client.objects.create(spot=spot, user_id=2)
    path = write(
        tmp_path,
        "user_id,username,name,geo,advert__campaign_id,utm_source,cl_id\n"
        "1,ann,Ann,de,c7,fb,k1\n"
        "2,bob,Bob,br,c8,tt,k2\n"
        "x,eve,Eve,pl,c9,,\n",
    )
    call_command("import_clients", path, "--spot", spot.slug)
    ann = Client.objects.get(user_id=1)
    assert (ann.username, ann.geo, ann.advert_campaign_id, ann.cl_id) == ("ann", "DE", "c7", "k1")
    assert ann.params == {"utm_source": "fb"}
    out = capsys.readouterr().out
    assert "1 client(s) created." in out
    assert "1 already there (same user_id)." in out
    assert "line 4: user_id 'x' is not a number" in out


def imported_and_live(spot, lead, client, tmp_path, *options):
    """The same two events, once imported for `lead` and once over HTTP for a
    twin client: (what the import made, what the endpoint made)."""
    from postbacks.models import Delivery, OutgoingPostback
    from tracker.models import Pixel

    OutgoingPostback.objects.create(spot=spot, name="Tracker", url="https://t.example/?c={tid}")
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="t")
    spot.goals.filter(token="dep").update(
        facebook_event="Purchase", message_template="Deposit {sum} {currency}"
    )
    spot.goals.filter(token="lead").update(facebook_event="")  # the twin's click sends nothing
    twin = Client.objects.create(spot=spot, name="Ann", cl_id="trk-2", advert_campaign_id="c1")
    path = write(tmp_path, f"subid,payout,tid,status\n{lead.click_id},50,t1,approved\n")
    call_command("import_conversions", path, *options)
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    answer = client.get(
        url,
        {"clickid": twin.click_id, "tracker.event": "sale"}
        | {"tracker.cost": "50", "tracker.tid": "t1"},
    )
    assert answer.status_code == 200, answer.content

    def made(who):
        targets = sorted(d.target_name for d in Delivery.objects.filter(conversion__client=who))
        return targets, list(who.messages.values_list("text", flat=True))

    return made(lead), made(twin)


def test_an_imported_conversion_makes_what_the_same_event_over_http_makes(
    spot, lead, client, tmp_path
):
    imported, live = imported_and_live(spot, lead, client, tmp_path)
    assert imported == live == (["Facebook Conversions API 1", "Tracker"], ["Deposit 50.00 USD"])


def test_no_postbacks_back_fills_history_without_deliveries_or_messages(
    spot, lead, client, tmp_path
):
    imported, live = imported_and_live(spot, lead, client, tmp_path, "--no-postbacks")
    assert imported == ([], []) and live != imported
    assert Conversion.objects.filter(client=lead).count() == 1
