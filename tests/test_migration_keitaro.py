"""A Keitaro postback made before status words is mended on upgrade: its locked
URL sends {status} in Keitaro's words instead of a fixed sale."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def latest_but(step):
    """Every app at its latest migration, postbacks at `step`."""
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    return [(app, name) for app, name in leaves if app != "postbacks"] + [("postbacks", step)]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_an_old_keitaro_postback_sends_the_real_status_after_the_upgrade():
    apps = migrate(latest_but("0007_receiver_words_and_retrying"))
    Spot = apps.get_model("tracker", "Spot")
    Partner = apps.get_model("tracker", "Partner")
    OutgoingPostback = apps.get_model("postbacks", "OutgoingPostback")
    spot = Spot.objects.create(name="S", slug="s")
    keitaro = Partner.objects.create(spot=spot, name="K", slug="k", preset="keitaro")
    path = "/postback?subid={cl_id}&status=sale&payout={sum}&currency={currency}&tid={tid}"
    old = OutgoingPostback.objects.create(
        spot=spot, partner=keitaro, name="K", url="https://trk.example" + path, locked=True
    )
    hand = OutgoingPostback.objects.create(  # written by hand: left as its author wrote it
        spot=spot, name="Mine", url="https://mine.example" + path
    )
    try:
        apps = migrate(latest_but("0008_keitaro_status_words"))
        OutgoingPostback = apps.get_model("postbacks", "OutgoingPostback")
        mended = OutgoingPostback.objects.get(pk=old.pk)
        assert "&status={status}&" in mended.url and "status=sale" not in mended.url
        assert mended.status_words.splitlines()[0] == "approved = sale"
        assert mended.required_macros == "cl_id"
        assert OutgoingPostback.objects.get(pk=hand.pk).url == hand.url
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
