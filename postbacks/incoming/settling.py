"""A click's client, inserted alone by the web, settled by the workers.

A click must answer with its redirect after one write: the client's row,
whose click id the landing and the networks carry from then on
(crm/clicks.py inserts it with settled=False). What else a new client
brings is done here, by every delivery loop on each pass, for a batch of
them in one transaction:

- its manager, the spot's next in turn (Client.save does it for others);
- its lead count in the statistics rollup, added once per key for the batch;
- the cost its click carried (the spot's cost parameters);
- the "lead" event, recorded and sent to the targets that pick it;
- the replay of the unmatched postbacks that waited for its click id.

Until then the client exists and postbacks for it are decided as usual; it
is only not yet counted as a lead. A crash before the commit leaves the
batch unsettled, and the next pass settles it: nothing is counted twice.
"""

import logging
import time

from django.conf import settings

from crm import spend, stats
from crm.models import Client
from postbacks.delivery.fanout import batched, lead_event, lead_goal
from postbacks.incoming import replay
from tracker.retry import retried_until

log = logging.getLogger(__name__)

# Seconds a batch's settling may spend retrying a lost connection or race.
RETRY_FOR = 30.0


def settle_new(limit=None):
    """Settle one batch of new clients; returns how many."""
    if not Client.objects.filter(settled=False).exists():
        return 0  # a read: no write transaction (on SQLite, the write lock) for nothing
    try:
        return retried_until(time.monotonic() + RETRY_FOR, settle_batch, limit)
    except Exception:
        log.exception("Settling new clients failed; the next pass tries again")
        return 0


def settle_batch(limit=None):
    clients = list(
        Client.objects.filter(settled=False)
        .select_related("spot")
        .order_by("id")
        .select_for_update(skip_locked=True, of=("self",))[: limit or settings.INCOMING_BATCH]
    )
    if not clients:
        return 0
    goals = {}  # spot id -> its lead goal, or None
    with stats.gathered(), batched():
        for client in clients:
            client.settled = True
            if client.manager_id is None and client.spot.has_managers:
                client.manager_id = client.spot.next_manager_id()
        Client.objects.bulk_update(clients, ["settled", "manager"])
        stats.apply([], [r for c in clients for r in stats.lead_rows(stats.client_state(c))])
        for client in clients:
            cost = spend.click_cost(client.spot, client.params)
            if cost:
                spend.add_client_cost(client, cost)
            if client.spot_id not in goals:
                goals[client.spot_id] = lead_goal(client.spot_id)
            lead_event(client, goals[client.spot_id])
            replay.client_saved(Client, client)  # after the commit
    return len(clients)
