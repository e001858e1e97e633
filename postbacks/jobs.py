"""RQ jobs. Thin: the work is in postbacks.delivery and postbacks.queue."""

from django.conf import settings

from postbacks import delivery, queue


def deliver(delivery_id):
    return delivery.deliver(delivery_id)


def sweep():
    """The periodic sweep: re-enqueue due deliveries, then schedule the next sweep."""
    try:
        return queue.sweep(grace=settings.POSTBACKS_SWEEP_INTERVAL)
    finally:
        queue.schedule_sweep()
