"""RQ jobs. Thin: the work is in postbacks.delivery."""

import time

from django.utils import timezone

from postbacks import delivery
from postbacks.models import Delivery

# RQ keeps scheduled times in whole seconds, so a job scheduled with
# enqueue_at may start up to a second before its delivery is due. It waits
# that out rather than leave the delivery to the next sweep.
EARLY_START = 2.0


def deliver(delivery_id):
    pending = Delivery.objects.filter(pk=delivery_id, status=Delivery.PENDING)
    at = pending.values_list("next_attempt", flat=True).first()
    early = (at - timezone.now()).total_seconds() if at else 0
    if 0 < early <= EARLY_START:
        time.sleep(early)
    return delivery.deliver(delivery_id)
