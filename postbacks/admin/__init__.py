"""The admin pages of postbacks, one module per page.

The spot page and the client card are registered here, not in tracker or crm,
because imports flow one way (tracker <- crm <- postbacks) and both pages show
postbacks' inlines.
"""

from postbacks.admin import clients, deliveries, incoming, outgoing, spots  # noqa: F401
