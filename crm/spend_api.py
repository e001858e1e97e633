"""Daily spend pulled from the ad networks' reporting APIs, per ad account of the admin.

- Facebook Marketing API: GET {base}/{version}/act_<id>/insights at the ad
  level, one row per ad and day (time_increment=1), following `paging.next`.
- TikTok Business API: GET {base}/open_api/v1.3/report/integrated/get/, a
  BASIC report at the ad level by ad and day, page by page.

The base URLs are the ad networks' of settings.POSTBACKS_PIXEL_URLS (the same
hosts take the pixels' events), so a test points them at a stand-in server.
Each day of the range goes through crm.spend.replace_day under the source
"facebook:<account>" or "tiktok:<account>": a day pulled again replaces that
day's figures, and a day the network reports no spend for any more is
emptied. Campaign, ad set and ad are the networks' ids, as a click's
`advert__campaign_id` etc. carry them, so cost and revenue meet on one row.
"""

import datetime
import json
import logging
from decimal import Decimal, InvalidOperation

import requests
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from crm import spend
from tracker.models import AdAccount

log = logging.getLogger(__name__)

FACEBOOK_VERSION = "v21.0"
TIMEOUT = (5, 60)  # connect, read: seconds; a report of many ads takes a while
# Pages followed at most per request: a loop of `next` links must end.
MAX_PAGES = 1000
FACEBOOK_PAGE = 500
TIKTOK_PAGE = 1000
# TikTok answers at most 30 days per daily report: longer ranges go in parts.
TIKTOK_DAYS = 30
# Graph API error codes of a token that no longer works.
FACEBOOK_TOKEN_CODES = {190, 102, 2500}
# TikTok codes of a bad or expired token.
TIKTOK_TOKEN_CODES = {40100, 40104, 40105, 40110}


class ApiError(Exception):
    """The network refused or failed: the message is shown on the ad account."""


# -- the networks ----------------------------------------------------------------


def base_url(network):
    return settings.POSTBACKS_PIXEL_URLS[network].rstrip("/")


def facebook_id(account_id):
    """The digits of a Facebook ad account id written with or without act_."""
    text = account_id.strip()
    return text[4:] if text.lower().startswith("act_") else text


def get_json(url, params=None, headers=None):
    """GET a JSON answer; ApiError with the network's own words when it is not 200."""
    try:
        response = requests.get(url, params=params, headers=headers, timeout=TIMEOUT)
    except requests.RequestException as e:
        raise ApiError(f"No answer from {url.split('?')[0]}: {type(e).__name__}.") from e
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        raise ApiError(http_error(response, body))
    if not isinstance(body, dict):
        raise ApiError(f"HTTP {response.status_code}: the answer is not a JSON object.")
    return body


def http_error(response, body):
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # the Graph API's error object
        text = error.get("message") or error.get("type") or "no message"
        if error.get("code") in FACEBOOK_TOKEN_CODES:
            return f"The access token no longer works (expired or revoked): {text}"
        return f"HTTP {response.status_code}: {text}"
    if isinstance(body, dict) and body.get("message"):
        return f"HTTP {response.status_code}: {body['message']}"
    return f"HTTP {response.status_code}: {response.text[:300].strip() or 'no message'}"


def amount_of(value, where):
    try:
        return Decimal(str(value if value not in (None, "") else "0"))
    except InvalidOperation as e:
        raise ApiError(f"{where}: the spend {str(value)[:40]!r} is not a number.") from e


def day_of(text, where):
    try:
        return datetime.date.fromisoformat(str(text)[:10])
    except ValueError as e:
        raise ApiError(f"{where}: {str(text)[:40]!r} is not a day.") from e


def facebook_rows(account, since, until):
    """(day, row) of each ad's spend per day, following the answer's pages."""
    url = (
        f"{base_url('facebook')}/{FACEBOOK_VERSION}/act_{facebook_id(account.account_id)}/insights"
    )
    params = {
        "access_token": account.access_token,
        "level": "ad",
        "fields": "campaign_id,campaign_name,adset_id,adset_name,ad_id,ad_name,"
        "spend,account_currency,date_start",
        "time_increment": 1,
        "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}),
        "limit": FACEBOOK_PAGE,
    }
    for _ in range(MAX_PAGES):
        body = get_json(url, params)
        for item in body.get("data") or []:
            where = f"Facebook row of {item.get('date_start')}"
            yield (
                day_of(item.get("date_start"), where),
                {
                    "campaign": item.get("campaign_id") or item.get("campaign_name"),
                    "adset": item.get("adset_id") or item.get("adset_name"),
                    "ad": item.get("ad_id") or item.get("ad_name"),
                    "amount": amount_of(item.get("spend"), where),
                    "currency": item.get("account_currency") or account_currency(account),
                },
            )
        url = (body.get("paging") or {}).get("next")
        if not url:
            return
        params = None  # the next link carries every parameter


def tiktok_rows(account, since, until):
    """(day, row) of each ad's spend per day, TIKTOK_DAYS at a time, page by page."""
    start = since
    while start <= until:
        end = min(until, start + datetime.timedelta(days=TIKTOK_DAYS - 1))
        yield from tiktok_part(account, start, end)
        start = end + datetime.timedelta(days=1)


def tiktok_part(account, since, until):
    url = f"{base_url('tiktok')}/open_api/v1.3/report/integrated/get/"
    params = {
        "advertiser_id": account.account_id.strip(),
        "report_type": "BASIC",
        "data_level": "AUCTION_AD",
        "dimensions": json.dumps(["ad_id", "stat_time_day"]),
        "metrics": json.dumps(
            ["spend", "campaign_id", "campaign_name", "adgroup_id", "adgroup_name"]
            + ["ad_name", "currency"]
        ),
        "start_date": since.isoformat(),
        "end_date": until.isoformat(),
        "page_size": TIKTOK_PAGE,
    }
    headers = {"Access-Token": account.access_token}
    for page in range(1, MAX_PAGES + 1):
        body = get_json(url, {**params, "page": page}, headers)
        if body.get("code") not in (0, "0"):
            raise ApiError(tiktok_error(body))
        data = body.get("data") or {}
        for item in data.get("list") or []:
            dims, metrics = item.get("dimensions") or {}, item.get("metrics") or {}
            where = f"TikTok row of {dims.get('stat_time_day')}"
            yield (
                day_of(dims.get("stat_time_day"), where),
                {
                    "campaign": metrics.get("campaign_id") or metrics.get("campaign_name"),
                    "adset": metrics.get("adgroup_id") or metrics.get("adgroup_name"),
                    "ad": dims.get("ad_id") or metrics.get("ad_name"),
                    "amount": amount_of(metrics.get("spend"), where),
                    "currency": metrics.get("currency") or account_currency(account),
                },
            )
        if page >= int((data.get("page_info") or {}).get("total_page") or 1):
            return


def tiktok_error(body):
    code, text = body.get("code"), body.get("message") or "no message"
    if code in TIKTOK_TOKEN_CODES:
        return f"The access token no longer works (expired or revoked): {text}"
    return f"TikTok error {code}: {text}"


ROWS = {AdAccount.FACEBOOK: facebook_rows, AdAccount.TIKTOK: tiktok_rows}


def account_currency(account):
    return account.currency or account.spot.currency


def source_of(account):
    """The spend source of an account: one per account, however its id was written."""
    if account.network == AdAccount.FACEBOOK:
        return f"facebook:{facebook_id(account.account_id)}"
    return f"{account.network}:{account.account_id.strip()}"


# -- importing ----------------------------------------------------------------------


def days(since, until):
    return [since + datetime.timedelta(days=n) for n in range((until - since).days + 1)]


def pull(account, since, until):
    """{day: [rows]} of every day of the range (an empty list: no spend that day)."""
    if not account.access_token:
        raise ApiError("No access token: set one on the ad account.")
    found = {day: [] for day in days(since, until)}
    for day, row in ROWS[account.network](account, since, until):
        if day in found and row["amount"]:
            found[day].append(row)
    return found


def import_account(account, since, until, progress=None):
    """Pull and store an account's spend of each day from `since` to `until`.

    Returns {day: rows stored}. A failure is stored on the account (last_error)
    and raised as ApiError; the days stored before it stay."""
    stored = {}
    try:
        found = pull(account, since, until)
        for day, rows in found.items():
            stored[day] = spend.replace_day(source_of(account), account.spot_id, day, rows)
            if progress:
                progress(account, day, stored[day])
    except (ApiError, ValueError) as e:
        note(account, str(e))
        raise ApiError(str(e)) from e
    note(account, "")
    return stored


def note(account, error):
    account.last_imported, account.last_error = timezone.now(), error
    AdAccount.objects.filter(pk=account.pk).update(
        last_imported=account.last_imported, last_error=error
    )


def recent_range(count=None):
    """The last `count` days up to today (SPEND_IMPORT_DAYS by default)."""
    until = timezone.localdate()
    count = max(1, count or settings.SPEND_IMPORT_DAYS)
    return until - datetime.timedelta(days=count - 1), until


def usable():
    return AdAccount.objects.filter(enabled=True).exclude(access_token="").select_related("spot")


def claim_due(interval):
    """The enabled accounts not pulled for `interval` seconds, each claimed by
    setting last_imported: another worker's loop then finds it not due."""
    now = timezone.now()
    due = Q(last_imported__isnull=True) | Q(
        last_imported__lt=now - datetime.timedelta(seconds=interval)
    )
    claimed = []
    for account in usable().filter(due):
        if AdAccount.objects.filter(due, pk=account.pk).update(last_imported=now):
            claimed.append(account)
    return claimed


def import_due():
    """Pull the recent days of every account that is due (the workers, hourly)."""
    interval = settings.SPEND_IMPORT_INTERVAL
    if not interval:
        return 0
    since, until = recent_range()
    done = 0
    for account in claim_due(interval):
        try:
            import_account(account, since, until)
            done += 1
        except ApiError as e:
            log.warning("Spend of %s not imported: %s", account, e)
    return done
