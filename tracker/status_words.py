"""A receiver's words for our conversion statuses, and what status words mean.

An outgoing postback sends {status} in the receiver's words ('approved = sale'
for Keitaro). Presets (tracker) and outgoing postbacks (postbacks) both check
them, so they live here, in the lowest layer.
"""

import re

from tracker.models import CONVERSION_STATUSES

STATUSES = [s for s, _ in CONVERSION_STATUSES]

# Words trackers and networks use for each status: a word of one status given
# to another (rejected = sale) would report a chargeback as a sale.
MEANINGS = {
    "approved": {"approved", "approve", "sale", "confirmed", "paid", "success", "rebill"},
    "pending": {"pending", "hold", "on_hold", "onhold", "waiting", "processing"},
    "rejected": {
        "rejected",
        "reject",
        "declined",
        "decline",
        "cancelled",
        "canceled",
        "chargeback",
        "refund",
        "refunded",
        "trash",
        "fraud",
    },
}
# Query, form or JSON keys that carry a conversion's status to a receiver.
STATUS_KEY = re.compile(r"(^|_)(status|state)$", re.IGNORECASE)
QUERY_PAIR = re.compile(r"([A-Za-z0-9_.\[\]-]+)=([^&#\s]*)")
JSON_PAIR = re.compile(r'"([^"]+)"\s*:\s*"([^"]*)"')


def meaning_of(word):
    """The status a receiver's word stands for, or None for a word we cannot tell."""
    word = word.strip().lower()
    for status, words in MEANINGS.items():
        if word in words:
            return status
    return None


def parse_status_words(text):
    """'approved = sale' lines -> {"approved": "sale"}; raises ValueError naming the line.

    The other way round from a partner's status map (their word = our status):
    here we speak, and the word is what the receiver understands."""
    words = {}
    for n, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        status, sep, word = line.partition("=")
        status, word = status.strip().lower(), word.strip()
        if not sep or not word or status not in STATUSES:
            raise ValueError(
                f"Line {n}: write 'status = their word' with a status of "
                f"{', '.join(STATUSES)}, e.g. 'approved = sale'; got {line!r}."
            )
        if status in words:
            raise ValueError(f"Line {n}: {status} is given a word twice.")
        meaning = meaning_of(word)
        if meaning not in (None, status):
            raise ValueError(
                f"Line {n}: {word!r} means {meaning}: a {status} conversion would reach "
                f"the receiver as {meaning}."
            )
        words[status] = word
    return words


def literal_statuses(template):
    """'status=sale' (or "status": "sale") pairs of `template` whose value is a
    fixed word, not a macro: [(key, value)]. A fixed status reports every
    event, a chargeback too, as that one status."""
    found = []
    for pattern in (QUERY_PAIR, JSON_PAIR):
        for key, value in pattern.findall(template or ""):
            if value and "{" not in value and STATUS_KEY.search(key):
                found.append((key, value))
    return found


def contradicting_words(template, sends):
    """Fixed status words in `template` (type=sale) whose meaning is not the
    only status the target `sends`: [(key, value, meaning)]."""
    found = []
    for pattern in (QUERY_PAIR, JSON_PAIR):
        for key, value in pattern.findall(template or ""):
            meaning = meaning_of(value) if "{" not in value else None
            if meaning and set(sends) != {meaning}:
                found.append((key, value, meaning))
    return found
