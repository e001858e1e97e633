"""Without Redis a background thread of the web process delivers, retries included."""

import threading
import time

import pytest
from django.core.management import call_command

from crm.models import Client
from postbacks.delivery.fanout import accept
from postbacks.loops import embedded
from postbacks.models import Delivery, OutgoingPostback
from tracker import serving
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


@pytest.mark.django_db(transaction=True)
def test_the_loop_sends_nothing_while_its_server_sets_up_and_all_once_it_listens(
    receiver, settings
):
    # quickstart's demo postback goes to quickstart's own server: sent before
    # the server listens, it would be refused and wait a minute for its retry.
    settings.REDIS_URL = ""
    settings.POSTBACKS_EMBEDDED_POLL = 0.02
    spot = Spot.objects.create(name="Bot", slug="bot")
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    stop = threading.Event()
    thread = threading.Thread(target=embedded.run_forever, args=(stop,), daemon=True)
    serving.setting_up.send(sender=None)
    thread.start()
    try:
        accept(Client.objects.create(spot=spot, advert_pixel="px"), "reg")
        time.sleep(0.3)  # the loop has had many passes
        assert receiver.requests == []
        serving.listening.send(sender=None)
        got = receiver.wait_for(1, timeout=2)
    finally:
        embedded.release()
        stop.set()
        embedded.wake()
        thread.join(5)
    assert [r.path for r in got] == ["/pb"]
    assert Delivery.objects.get().attempts == 1


def test_the_deliver_command_sends_what_is_due(spot, lead, receiver, capsys):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    accept(lead, "reg")
    call_command("deliver", "--once")
    assert len(receiver.wait_for(1)) == 1
    assert "Sent 1 deliveries." in capsys.readouterr().out
