"""Signals of a command that serves HTTP from its own process (quickstart).

The embedded delivery loop (postbacks/loops/embedded.py) runs in that process too,
and the demo's outgoing postback goes to that very server: what the loop sent
before the server listens would be refused, and wait a minute for its retry.
So the loop holds its sends from `setting_up` until `listening`.
"""

from django.dispatch import Signal

setting_up = Signal()  # the command sets up (migrate, demo data) before it serves
listening = Signal()  # its server accepts connections now
