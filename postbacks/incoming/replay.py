"""Unmatched postbacks replay themselves when their client appears.

A network may call before the client exists here (its click reached us late,
or the bot registers the lead after the partner's registration). Such a
postback is stored as unmatched with the click id it names. When a client
with that click id (ours or the team tracker's) is saved within the look-back
window (POSTBACKS_UNMATCHED_LOOKBACK_DAYS), the postback is replayed once,
right after the client's transaction commits, with the outcome on its row.

So that the click path pays nothing for this when nothing waits, the spot
remembers until when a postback of it may still be waiting
(Spot.unmatched_until); a client looks for waiting postbacks only before then.
"""

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.utils import timezone

from crm.models import Client
from postbacks.incoming.process import replay
from postbacks.incoming.unmatched import lookback
from postbacks.models import IncomingPostback

log = logging.getLogger(__name__)


def client_saved(sender, instance, raw=False, update_fields=None, **kwargs):
    """A client was created or got a (new) tracker click id: replay what waited for it."""
    if raw or (update_fields is not None and "cl_id" not in update_fields):
        return
    if not instance.settled:
        return  # its settling replays them (incoming/settling.py)
    until = instance.spot.unmatched_until
    if until is None or until < timezone.now():
        return
    pk = instance.pk
    transaction.on_commit(lambda: replay_waiting(pk))


def waiting_for(client):
    ids = {client.click_id, client.cl_id} - {""}
    return IncomingPostback.objects.filter(
        spot_id=client.spot_id,
        status=IncomingPostback.UNMATCHED,
        click_id__in=ids,
        received__gte=timezone.now() - lookback(),
    ).order_by("received", "id")


def replay_waiting(client_pk):
    """Replay, oldest first, the unmatched postbacks that wait for this client."""
    client = Client.objects.filter(pk=client_pk).first()
    if client is None:
        return
    for row in waiting_for(client):
        try:
            outcome = replay(row, why=f"client {client.pk} appeared")
        except Exception:  # the client is saved; a failed replay stays replayable by hand
            log.exception("Replaying incoming postback %s failed", row.pk)
            continue
        if outcome is not None:
            log.info(
                "Incoming postback %s replayed for client %s: %s", row.pk, client.pk, outcome.status
            )


def connect():
    post_save.connect(client_saved, sender=Client, dispatch_uid="postbacks_replay_waiting")
