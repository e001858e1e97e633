"""Exchange rates keep themselves current: the workers fetch the ECB's, and a new or
changed rate revalues conversions and spend in the background, without a command."""

import datetime
import io
import threading
import time
import zipfile
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from crm.models import Conversion, DailyStat, ExchangeRate, Spend
from crm.spend import replace_day
from postbacks.loops import embedded, periodic
from tests import standin as stand_in

TODAY = timezone.localdate()


@pytest.fixture
def standin():
    """A stand-in of the outside API on 127.0.0.1."""
    yield from stand_in.serve()


def ecb_zip(day, usd="1.2500"):
    """The ECB's eurofxref.zip: one CSV, rates per euro, a trailing comma."""
    text = f"Date, USD, JPY, \n{day.strftime('%d %B %Y')}, {usd}, 160.00, \n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("eurofxref.csv", text)
    return buffer.getvalue()


@pytest.fixture
def background(settings):
    """This process's background work starts afresh: nothing asked, everything due."""
    settings.REDIS_URL = ""
    settings.POSTBACKS_EMBEDDED_POLL = 0.02
    periodic._revalue.clear()
    periodic._imports.clear()
    periodic._next.update(spend=0.0, ecb=0.0)
    yield
    periodic._revalue.clear()
    periodic._next.update(spend=0.0, ecb=0.0)


def run_loop_until(check, timeout=10.0):
    """Run the delivery loop, as the web process runs it without Redis, until `check()`."""
    stop = threading.Event()
    thread = threading.Thread(target=embedded.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not check() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        embedded.wake()
        thread.join(10)
    return check()


def reported(tid):
    return Conversion.objects.get(tid=tid).reported_amount


def revenue(spot):
    rows = DailyStat.objects.filter(grain="", basis=DailyStat.CONVERSION, spot=spot)
    return rows.exclude(goal_pk=0).aggregate(total=Sum("amount"))["total"]


@pytest.mark.django_db(transaction=True)
def test_a_fetched_ecb_file_revalues_a_eur_conversion_without_a_command(
    spot, lead, standin, settings, background
):
    settings.ECB_FETCH = True
    settings.ECB_RATES_URL = standin.url
    standin.answer("/eurofxref.zip", 200, ecb_zip(TODAY), {"Content-Type": "application/zip"})
    lead.record_conversion("dep", Decimal("10"), "EUR", "e1")
    replace_day(
        "file:x", spot, TODAY, [{"campaign": "c1", "amount": Decimal("5"), "currency": "EUR"}]
    )
    assert reported("e1") is None and Spend.objects.get().reported_amount is None

    assert run_loop_until(lambda: reported("e1") is not None)
    # 1.25 dollars per euro: the ECB's rate turned into euros per dollar.
    assert ExchangeRate.objects.get(currency="EUR", day=TODAY).rate == Decimal("0.8")
    assert reported("e1") == Decimal("12.5") and revenue(spot) == Decimal("12.5")
    assert Spend.objects.get().reported_amount == Decimal("6.25")
    assert [a.path for a in standin.asked] == ["/eurofxref.zip"]


@pytest.mark.django_db(transaction=True)
def test_a_changed_ecb_rate_revalues_again_and_a_failed_fetch_is_tried_later(
    spot, lead, standin, settings, background
):
    settings.ECB_FETCH = True
    settings.ECB_RATES_URL = standin.url
    ExchangeRate.objects.create(day=TODAY, currency="EUR", rate=Decimal("0.5"))
    lead.record_conversion("dep", Decimal("10"), "EUR", "e1")
    assert reported("e1") == Decimal("20")
    standin.answer("/eurofxref.zip", 200, ecb_zip(TODAY, usd="1.6"))
    assert run_loop_until(lambda: reported("e1") == Decimal("16"))
    assert revenue(spot) == Decimal("16")

    standin.answer("/eurofxref.zip", 503, "down")
    periodic._next["ecb"] = 0.0
    periodic.tick()  # logged, not raised: the loop goes on delivering
    assert periodic._next["ecb"] > time.monotonic() + 3000  # tried again in an hour
    assert reported("e1") == Decimal("16")


@pytest.mark.django_db(transaction=True)
def test_a_rate_added_or_changed_in_the_admin_revalues_in_the_background(
    admin_client, spot, lead, background
):
    lead.record_conversion("dep", Decimal("10"), "EUR", "e1")
    old = Conversion.objects.get(tid="e1")
    Conversion.objects.filter(pk=old.pk).update(created=timezone.now() - datetime.timedelta(3))
    call_command("rebuild_stats")
    day = TODAY - datetime.timedelta(days=5)

    url = "/admin/crm/exchangerate/add/"
    response = admin_client.post(url, {"day": day.isoformat(), "currency": "EUR", "rate": "0.8"})
    assert response.status_code == 302
    assert reported("e1") is None  # not in the admin's request
    assert run_loop_until(lambda: reported("e1") is not None)
    assert reported("e1") == Decimal("12.5")

    rate = ExchangeRate.objects.get()
    change = f"/admin/crm/exchangerate/{rate.pk}/change/"
    data = {"day": day.isoformat(), "currency": "EUR", "rate": "0.5"}
    assert admin_client.post(change, data).status_code == 302
    assert reported("e1") == Decimal("12.5")
    assert run_loop_until(lambda: reported("e1") == Decimal("20"))
    assert revenue(spot) == Decimal("20")

    # Removed: the amount has no rate any more, and is flagged so again.
    delete = f"/admin/crm/exchangerate/{rate.pk}/delete/"
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert run_loop_until(lambda: reported("e1") is None)


def test_import_rates_ecb_fetches_and_revalues_at_once(spot, lead, standin, settings, capsys):
    settings.ECB_RATES_URL = standin.url + "/"
    standin.answer("/eurofxref.zip", 200, ecb_zip(TODAY))
    lead.record_conversion("dep", Decimal("10"), "EUR", "e1")
    call_command("import_rates", "--ecb")
    out = capsys.readouterr().out
    assert "EUR from" in out and "1 conversion(s) revalued" in out
    assert reported("e1") == Decimal("12.5")
    standin.answer("/eurofxref.zip", 404, "Not Found")
    with pytest.raises(Exception, match="HTTP 404"):
        call_command("import_rates", "--ecb")
