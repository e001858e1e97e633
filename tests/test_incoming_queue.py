"""The default intake: a postback is stored queued and answered at once, and the
workers decide the queued rows in batches (postbacks/incoming/batches.py)."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm import spots
from crm.models import Client, Conversion, DailyStat, Message
from postbacks.incoming import batches
from postbacks.loops import intake
from postbacks.models import Delivery, IncomingPostback, OutgoingPostback
from tracker.models import Partner, Spot


@pytest.fixture
def queued_spot(db):
    return Spot.objects.create(name="Queued", slug="queued", currency="USD")


@pytest.fixture
def ann(queued_spot):
    return Client.objects.create(spot=queued_spot, name="Ann")


def url(spot):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback"


def send(client, spot, **params):
    return client.get(url(spot), params)


def test_a_postback_is_answered_queued_and_decided_by_the_workers(client, queued_spot, ann):
    OutgoingPostback.objects.create(spot=queued_spot, name="T", url="https://t.example/?s={sum}")
    answer = send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="50")
    row = IncomingPostback.objects.get()
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "status": "queued", "id": row.pk}
    assert (row.status, row.click_id, row.spot) == ("queued", ann.click_id, queued_spot)
    assert not Conversion.objects.exists() and not Delivery.objects.exists()

    assert intake.decide_all() == 1
    row.refresh_from_db()
    conversion = Conversion.objects.get()
    assert (row.status, row.conversion, row.client) == ("accepted", conversion, ann)
    assert (conversion.goal.token, conversion.amount) == ("dep", Decimal("50"))
    assert Delivery.objects.get().conversion == conversion
    assert row.claimed_until is None and row.processed


def test_the_spots_plain_answer_is_given_to_a_queued_postback(client, queued_spot, ann):
    Spot.objects.filter(pk=queued_spot.pk).update(plain_answer="OK")
    spots.forget()
    answer = send(client, queued_spot, clickid=ann.click_id, goal="reg")
    assert (answer.status_code, answer.content) == (200, b"OK")
    assert IncomingPostback.objects.get().status == "queued"


@pytest.mark.parametrize(
    "params, status, words",
    [
        ({"goal": "reg"}, 400, "No click id"),
        ({"clickid": "{clickid}", "goal": "reg"}, 400, "macro"),
        ({"clickid": "x", "goal": "jackpot"}, 400, "Unknown event 'jackpot'"),
        ({"clickid": "x", "goal": "dep", "sum": "lots"}, 400, "sum"),
        ({"clickid": "x", "goal": "dep", "status": "maybe"}, 400, "maybe"),
    ],
)
def test_input_bad_without_its_client_is_a_4xx_and_stored_rejected(
    client, queued_spot, params, status, words
):
    answer = send(client, queued_spot, **params)
    assert answer.status_code == status
    assert answer.json()["ok"] is False and words in answer.json()["error"]
    row = IncomingPostback.objects.get()
    assert (row.status, row.http_status) == ("rejected", status) and words in row.error
    assert intake.decide_all() == 0  # nothing queued


def test_an_unknown_token_is_a_404_and_stored(client, db):
    answer = client.get("/api/postbacks/3c1e0d5b-8f1a-4c1e-9a55-2a8a1c0b7e11/tracker-postback")
    assert answer.status_code == 404
    assert IncomingPostback.objects.get().status == "rejected"


def test_answer_after_processing_keeps_the_outcome_in_the_answer(client, queued_spot, ann):
    queued_spot.answer_after_processing = True
    queued_spot.save()
    body = send(client, queued_spot, clickid=ann.click_id, goal="reg").json()
    assert (body["status"], body["goal"]) == ("accepted", "reg")
    assert IncomingPostback.objects.get().status == "accepted"


def test_the_web_path_is_one_insert_once_the_spot_is_kept(client, queued_spot, ann):
    send(client, queued_spot, clickid=ann.click_id, goal="reg")  # reads the spot
    with CaptureQueriesContext(connection) as queries:
        answer = send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="5")
    assert answer.json()["status"] == "queued"
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 1, statements
    assert statements[0].startswith(f'INSERT INTO "{IncomingPostback._meta.db_table}"')


def test_a_click_is_one_insert_and_is_counted_when_settled(client, queued_spot):
    Spot.objects.filter(pk=queued_spot.pk).update(target_url="https://land.example/")
    spots.forget()
    client.get("/go/queued?advert__campaign_id=c0")  # reads the spot
    with CaptureQueriesContext(connection) as queries:
        answer = client.get("/go/queued?advert__campaign_id=c1")
    assert answer.status_code == 302
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 1 and statements[0].startswith('INSERT INTO "crm_client"')
    assert not Client.objects.filter(settled=True).exists()
    assert not DailyStat.objects.exists()

    assert intake.decide_all() == 2
    assert Client.objects.filter(settled=True).count() == 2
    leads = DailyStat.objects.filter(grain="c", basis=DailyStat.CLICK, goal_pk=0)
    assert {(r.campaign, r.count) for r in leads} == {("c0", 1), ("c1", 1)}


def test_a_postback_waiting_for_a_click_is_replayed_when_the_click_is_settled(client, queued_spot):
    Spot.objects.filter(pk=queued_spot.pk).update(target_url="https://land.example/")
    spots.forget()
    send(client, queued_spot, clickid="trk-9", goal="reg")
    intake.decide_all()
    assert IncomingPostback.objects.get().status == "unmatched"
    client.get("/go/queued?cl_id=trk-9")
    with django_capture_on_commit():
        intake.decide_all()
    assert IncomingPostback.objects.get().status == "accepted"
    assert Conversion.objects.get().client.cl_id == "trk-9"


def django_capture_on_commit():
    """Run on-commit callbacks of the test's transaction as if it committed."""
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


def test_the_rows_of_one_click_are_decided_in_arrival_order(client, queued_spot, ann):
    bob = Client.objects.create(spot=queued_spot, name="Bob")
    send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="10", tid="t1")
    send(client, queued_spot, clickid=bob.click_id, goal="reg")
    send(client, queued_spot, clickid=ann.click_id, goal="dep", tid="t1", status="rejected")
    first, second, third = IncomingPostback.objects.order_by("id")
    # A worker holds Ann's first row; another may take Bob's, not Ann's next.
    assert batches.claim_batch("a" * 32, 1) == [first.pk]
    assert batches.claim_batch("b" * 32, 10) == [second.pk]
    batches.decide_claimed("b" * 32)
    batches.decide_claimed("a" * 32)
    assert batches.decide_queued() == 1  # Ann's chargeback, after her deposit
    statuses = [r.status for r in IncomingPostback.objects.order_by("id")]
    assert statuses == ["accepted", "accepted", "updated"]
    assert Conversion.objects.get(client=ann).status == "rejected"


def test_a_dead_workers_batch_is_decided_once_by_another(client, queued_spot, ann):
    send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="10", tid="t1")
    send(client, queued_spot, clickid=ann.click_id, goal="dep", tid="t1", status="rejected")
    dead = "d" * 32
    assert len(batches.claim_batch(dead, 10)) == 2  # and never decided: the worker died
    assert batches.decide_queued() == 0  # its lease holds
    IncomingPostback.objects.update(claimed_until=timezone.now() - datetime.timedelta(seconds=1))
    assert batches.decide_queued() == 2  # both rows of the click in one pass, in order
    assert batches.decide_claimed(dead) == []  # came back late: its claim was taken over
    assert Conversion.objects.get().status == "rejected"
    assert [r.status for r in IncomingPostback.objects.order_by("id")] == ["accepted", "updated"]


def test_a_row_a_slow_worker_still_holds_keeps_the_newer_rows_of_its_click_waiting(
    client, queued_spot, ann
):
    send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="10", tid="t1")
    send(client, queued_spot, clickid=ann.click_id, goal="dep", tid="t1", status="rejected")
    first, second = IncomingPostback.objects.order_by("id")
    lapsed = timezone.now() - datetime.timedelta(seconds=1)
    # The first row's lease lapsed while its worker decides it: it holds the row's lock.
    found = [(second.pk, queued_spot.pk, ann.click_id)]
    IncomingPostback.objects.filter(pk=first.pk).update(claim="s" * 32, claimed_until=lapsed)
    assert batches.in_click_order(found, timezone.now()) == []
    IncomingPostback.objects.filter(pk=first.pk).update(status="accepted")
    assert batches.in_click_order(found, timezone.now()) == [second.pk]


def test_a_bad_row_fails_alone_and_the_batch_is_decided(client, queued_spot, ann):
    other = Spot.objects.create(name="Gone", slug="gone", currency="USD")
    gone = Client.objects.create(spot=other, name="Gone")
    send(client, other, clickid=gone.click_id, goal="reg")
    send(client, queued_spot, clickid=ann.click_id, goal="reg")
    IncomingPostback.objects.filter(spot=other).update(token="not-a-spot-any-more")
    assert batches.decide_queued() == 2
    bad, good = IncomingPostback.objects.order_by("id")
    assert (bad.status, bad.http_status) == ("rejected", 404)
    assert good.status == "accepted"


def refuse_tid_in_the_database(tid):
    """A database failure of one row's own: a trigger refusing its conversion."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.tid = '{tid}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; "
                "END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON crm_conversion "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON crm_conversion "
                f"WHEN NEW.tid = '{tid}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )


def test_a_row_failing_in_the_database_fails_alone(client, queued_spot, ann):
    bob = Client.objects.create(spot=queued_spot, name="Bob")
    send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="5", tid="fine-1")
    send(client, queued_spot, clickid=bob.click_id, goal="dep", sum="5", tid="boom")
    send(client, queued_spot, clickid=ann.click_id, goal="redep", sum="7", tid="fine-2")
    refuse_tid_in_the_database("boom")
    assert batches.decide_queued() == 3
    first, bad, third = IncomingPostback.objects.order_by("id")
    assert (first.status, third.status) == ("accepted", "accepted")
    assert (bad.status, bad.http_status) == ("rejected", 500)
    assert "Internal error" in bad.error and "replayed" in bad.error
    assert sorted(Conversion.objects.values_list("tid", flat=True)) == ["fine-1", "fine-2"]
    # The chat has the good rows' messages, written with the batch; none of the bad one's.
    assert sorted(Message.objects.values_list("conversion__tid", flat=True)) == [
        "fine-1",
        "fine-2",
    ]
    # Counted once each: the failed run of the batch added nothing.
    assert (
        DailyStat.objects.get(
            grain="", basis=DailyStat.CONVERSION, goal_pk=first.conversion.goal_id
        ).count
        == 1
    )


def test_a_batch_adds_to_the_rollup_once_per_key(client, queued_spot):
    clients = [Client.objects.create(spot=queued_spot, name=f"c{i}") for i in range(20)]
    for c in clients:
        send(client, queued_spot, clickid=c.click_id, goal="reg")
    with CaptureQueriesContext(connection) as queries:
        assert batches.decide_queued() == 20
    upserts = [q for q in queries.captured_queries if "crm_dailystat" in q["sql"]]
    assert len(upserts) == 1
    assert DailyStat.objects.get(grain="", basis=DailyStat.CONVERSION).count == 20


def test_healthz_shows_the_backlog_and_fails_past_its_age(client, queued_spot, ann, settings):
    send(client, queued_spot, clickid=ann.click_id, goal="reg")
    data = client.get("/healthz").json()
    assert data["incoming"]["queued"] == 1 and data["incoming"]["late"] is False
    IncomingPostback.objects.update(received=timezone.now() - datetime.timedelta(minutes=5))
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["incoming"]["late"] is True
    assert "incoming queue is late" in answer.json()["error"]
    intake.decide_all()
    assert client.get("/healthz").status_code == 200


def test_the_admin_home_shows_the_queue(admin_client, client, queued_spot, ann):
    send(client, queued_spot, clickid=ann.click_id, goal="reg")
    page = admin_client.get("/admin/").content.decode()
    assert 'id="tile-queued"' in page and "incoming postback queued to decide" in page


def test_a_batch_keeps_a_send_share_counting_each_event(client, queued_spot):
    OutgoingPostback.objects.create(
        spot=queued_spot,
        name="Half",
        url="https://t.example/?s={sum}",
        send_share=50,
        all_users=True,
    )
    for n in range(4):
        lead = Client.objects.create(spot=queued_spot, name=f"c{n}")
        send(client, queued_spot, clickid=lead.click_id, goal="dep", sum="5")
    assert batches.decide_queued() == 4
    states = list(Delivery.objects.order_by("conversion_id").values_list("status", "last_error"))
    assert [s for s, _ in states] == ["pending", "skipped", "pending", "skipped"], states


def test_a_conversion_and_its_change_in_one_batch_make_two_events_in_order(
    client, queued_spot, ann
):
    OutgoingPostback.objects.create(
        spot=queued_spot, name="T", url="https://t.example/?s={status}", all_users=True
    )
    send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="10", tid="t1")
    send(client, queued_spot, clickid=ann.click_id, goal="dep", tid="t1", status="rejected")
    assert batches.decide_queued() == 2
    conversion = Conversion.objects.get()
    events = Delivery.objects.filter(conversion=conversion).order_by("event_id")
    assert [(d.event_id, d.event_status, d.previous_status) for d in events] == [
        (f"{conversion.pk}-0", "approved", ""),
        (f"{conversion.pk}-1", "rejected", "approved"),
    ]


def history(spot):
    """What a spot's postbacks made, comparable across spots."""
    rows = [(r.status, r.http_status) for r in IncomingPostback.objects.filter(spot=spot)]
    names = {c.pk: c.name for c in Client.objects.filter(spot=spot)}
    conversions = sorted(
        (names[c.client_id], c.goal.token, str(c.amount), c.status, c.tid)
        for c in Conversion.objects.filter(spot=spot)
    )
    events = sorted(
        (names[d.conversion.client_id], d.conversion.goal.token, d.event_status, d.previous_status)
        for d in Delivery.objects.filter(spot=spot)
    )
    return sorted(rows), conversions, events, Message.objects.filter(client__spot=spot).count()


def test_a_batch_decides_a_mixed_history_as_the_answer_after_processing_does(client, db):
    """Registrations, first and repeat deposits, repeats by tid, status changes,
    sales, fields and unknown clicks: decided one by one as they come, and
    queued then decided in one batch, they make the same rows and events."""
    steps = [
        ("a", {"goal": "reg"}),
        ("a", {"goal": "dep", "sum": "10", "tid": "d1"}),
        ("b", {"goal": "sale", "sum": "5"}),
        ("a", {"goal": "dep", "sum": "10", "tid": "d1"}),  # a duplicate
        ("a", {"goal": "dep", "sum": "12", "tid": "d1"}),  # a new amount
        ("b", {"goal": "sale", "sum": "7"}),  # a repeat deposit
        ("a", {"goal": "dep", "tid": "d1", "status": "rejected"}),  # a chargeback
        ("a", {"goal": "dep", "sum": "3"}),  # a first deposit again: a repeat one
        ("c", {"goal": "reg"}),
        ("c", {"goal": "reg"}),  # registers once
        ("b", {"goal": "redep", "sum": "4", "tid": "r9", "status": "pending"}),
        ("b", {"goal": "redep", "tid": "r9", "status": "approved"}),
        ("x", {"goal": "dep", "sum": "1"}),  # no such client: unmatched
        ("c", {"goal": "jackpot"}),  # rejected at once
    ]
    made = {}
    for answer_after in (True, False):
        spot = Spot.objects.create(
            name=f"S{answer_after}",
            slug=f"s{int(answer_after)}",
            currency="USD",
            answer_after_processing=answer_after,
        )
        OutgoingPostback.objects.create(
            spot=spot, name="T", url="https://t.example/?s={status}", all_users=True
        )
        leads = {n: Client.objects.create(spot=spot, name=n) for n in "abc"}
        for who, params in steps:
            clickid = leads[who].click_id if who in leads else "nobody"
            send(client, spot, clickid=clickid, **params)
        if not answer_after:
            assert batches.decide_queued() == len(steps) - 1  # the 400 was never queued
        made[answer_after] = history(spot)
    assert made[False] == made[True]


def statements_to_decide(client, spot, count, tag):
    for n in range(count):
        lead = Client.objects.create(spot=spot, name=f"{tag}{n}", geo="DE")
        send(client, spot, clickid=lead.click_id, goal="dep", sum="5", tid=f"{tag}{n}")
    with CaptureQueriesContext(connection) as queries:
        assert batches.decide_queued() == count
    return len(queries.captured_queries)


def test_a_batch_costs_a_few_statements_whatever_its_size(client, queued_spot):
    """Claim, lock, spot, clients, their values and conversions, targets, the
    conversions' ids and rows, the rollup, the deliveries, the messages and
    the outcomes: a fixed number of statements for the batch, whatever its
    size (crm/together.py inserts its new conversions in one)."""
    OutgoingPostback.objects.create(
        spot=queued_spot, name="T", url="https://t.example/?s={sum}", all_users=True
    )
    ten = statements_to_decide(client, queued_spot, 10, "a")
    thirty = statements_to_decide(client, queued_spot, 30, "b")
    assert thirty == ten <= 24, (ten, thirty)
    conversions = Conversion.objects.filter(tid__startswith="b").order_by("id")
    assert conversions.count() == 30
    assert all(c.created and c.reported_amount == Decimal("5") for c in conversions)
    assert Delivery.objects.filter(conversion__in=conversions).count() == 30


def test_the_loops_let_a_batch_gather_before_deciding(client, queued_spot, ann, settings):
    settings.INCOMING_LINGER, settings.INCOMING_BATCH = 0.5, 3
    assert intake.ready_in() is None  # nothing waits
    send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="5", tid="a")
    assert 0 < intake.ready_in() <= 0.5  # one fresh row: the loop comes back when it has waited
    send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="5", tid="b")
    send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="5", tid="c")
    assert intake.ready_in() == 0  # a full batch goes at once
    intake.decide_all()
    Client.objects.create(spot=queued_spot, name="Bob", settled=False)  # a click's new client
    assert intake.ready_in() > 0
    Client.objects.filter(settled=False).update(
        created=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert intake.ready_in() == 0  # the oldest has waited long enough


def test_a_conversion_new_in_a_batch_moves_with_its_clients_partner(client, queued_spot, ann):
    """Its row is inserted when the batch ends (crm/together.py): the partner a
    later row of the batch gives the client moves it in the rollup all the same."""
    partner = Partner.objects.create(spot=queued_spot, name="Net", slug="net")
    send(client, queued_spot, clickid=ann.click_id, goal="dep", sum="10", tid="d1")
    send(client, queued_spot, clickid=ann.click_id, goal="reg", partner="net")
    assert batches.decide_queued() == 2
    assert Client.objects.get(pk=ann.pk).partner == partner
    deps = DailyStat.objects.filter(
        grain="*", basis=DailyStat.CONVERSION, goal_pk=Conversion.objects.get(tid="d1").goal_id
    )
    assert [(d.partner_pk, d.count, d.amount) for d in deps if d.count] == [
        (partner.pk, 1, Decimal("10"))
    ]


def test_first_event_only_sees_the_batchs_own_earlier_conversion(client, queued_spot, ann):
    OutgoingPostback.objects.create(
        spot=queued_spot,
        name="First",
        url="https://t.example/?s={sum}",
        all_users=True,
        send_mode=OutgoingPostback.FIRST,
    )
    send(client, queued_spot, clickid=ann.click_id, goal="redep", sum="5", tid="r1")
    send(client, queued_spot, clickid=ann.click_id, goal="redep", sum="6", tid="r2")
    assert batches.decide_queued() == 2
    by_tid = dict(Delivery.objects.values_list("conversion__tid", "status"))
    assert by_tid == {"r1": Delivery.PENDING, "r2": Delivery.SKIPPED}, by_tid


@pytest.mark.django_db(transaction=True)
def test_an_idle_loop_looks_again_after_a_linger_and_never_spins(settings):
    from postbacks.delivery.batch import Pipeline
    from postbacks.loops import embedded

    pipeline = Pipeline()
    try:
        settings.INCOMING_LINGER = 0.5
        assert embedded.look(pipeline, 60.0) == 0.5  # nobody wakes it for a queued row
        settings.INCOMING_LINGER = 0
        assert embedded.look(pipeline, 60.0) == embedded.LOOK_AT_LEAST
    finally:
        pipeline.close()
