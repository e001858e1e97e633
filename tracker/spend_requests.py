"""Asking for an ad account's spend to be pulled, from this layer.

The pulling (crm/spend_api.py) and the background that runs it
(postbacks/loops/periodic.py) live in the layers above, which this one may not
import: the admin's action sends this signal, and the workers' side listens.
"""

from django.dispatch import Signal

# accounts: AdAccount pks; since, until: the days to pull.
spend_wanted = Signal()
