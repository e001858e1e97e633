"""Without Redis a background thread of the web process delivers, retries included."""

import threading

import pytest
from django.core.management import call_command

from crm.models import Client
from postbacks import embedded
from postbacks.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tracker.models import Spot

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.mark.django_db(transaction=True)
def test_the_background_loop_delivers_and_retries_after_commit(receiver, settings):
    settings.REDIS_URL = ""
    settings.POSTBACKS_EMBEDDED_POLL = 0.02
    spot = Spot.objects.create(name="Bot", slug="bot")
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    lead = Client.objects.create(spot=spot, advert_pixel="px")
    receiver.reply(500)
    stop = threading.Event()
    thread = threading.Thread(target=embedded.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        accept(lead, "reg")
        got = receiver.wait_for(2)
    finally:
        stop.set()
        embedded.wake()
        thread.join(5)
    assert [r.path for r in got] == ["/pb", "/pb"]
    assert Delivery.objects.get().status == Delivery.SUCCESS


def test_the_deliver_command_sends_what_is_due(spot, lead, receiver, capsys):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    accept(lead, "reg")
    call_command("deliver", "--once")
    assert len(receiver.wait_for(1)) == 1
    assert "Sent 1 deliveries." in capsys.readouterr().out
