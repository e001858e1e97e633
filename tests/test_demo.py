from django.core.management import call_command
from django.utils import timezone

from crm import report
from crm.models import Client, Conversion, DailyStat
from postbacks.models import Delivery, OutgoingPostback
from tracker.models import Partner, RegistrationLink, Spot


def test_load_demo_makes_a_living_spot(db, capsys):
    call_command("load_demo", "--clients", "30")
    spot = Spot.objects.get(slug="demo")
    assert Client.objects.filter(spot=spot).count() == 30
    assert Conversion.objects.filter(spot=spot).exists()
    assert Partner.objects.get(spot=spot).preset == "1win"
    assert RegistrationLink.objects.filter(spot=spot).exists()
    assert OutgoingPostback.objects.get(spot=spot).url.startswith("http://127.0.0.1:8000/demo/")
    assert Delivery.objects.filter(spot=spot).exists()
    today = timezone.localdate()
    rep = report.build(report.Query(today - timezone.timedelta(days=13), today))
    assert rep.total.leads == 30
    assert rep.total.counts["reg"] == Conversion.objects.filter(goal__token="reg").count()
    assert "Demo loaded" in capsys.readouterr().out


def test_load_demo_twice_loads_once(db, capsys):
    call_command("load_demo", "--clients", "5")
    rows = DailyStat.objects.count()
    call_command("load_demo", "--clients", "5")
    assert Client.objects.count() == 5 and DailyStat.objects.count() == rows
    assert "exists already" in capsys.readouterr().out


def test_quickstart_with_demo_sets_everything_up(db, capsys):
    call_command("quickstart", "--no-serve", "--demo")
    assert Spot.objects.filter(slug="demo").exists()
    out = capsys.readouterr().out
    assert "Admin user created" in out and "Demo loaded" in out


def test_quickstart_without_demo_loads_only_the_presets(db, capsys):
    call_command("quickstart", "--no-serve")
    assert not Spot.objects.exists()
    assert "--demo" in capsys.readouterr().out


def test_the_demo_receiver_answers_ok(client):
    assert client.get("/demo/receiver?x=1").content == b"OK"


def test_quickstart_on_another_address_moves_the_demo_postback_there(db, capsys):
    call_command("quickstart", "--no-serve", "--demo", "--addrport", "127.0.0.1:8101")
    postback = OutgoingPostback.objects.get(spot__slug="demo")
    assert postback.url.startswith("http://127.0.0.1:8101/demo/receiver?")
    Delivery.objects.filter(postback=postback).update(status=Delivery.FAILED)

    call_command("quickstart", "--no-serve", "--demo", "--addrport", "8102")
    postback.refresh_from_db()
    assert postback.url.startswith("http://127.0.0.1:8102/demo/receiver?")
    # What could not reach the old address goes to the new one.
    assert not Delivery.objects.filter(postback=postback, status=Delivery.FAILED).exists()
    assert "now goes to http://127.0.0.1:8102/demo/receiver" in capsys.readouterr().out
