"""URL building for registration links and partner postback URLs.

Registration links carry seed 003's double-brace macros ({{tracker.clickid}},
{{fields.X}}); they are rendered per client by crm.links. Partner postback
URLs carry the partner's own single-brace macros ({sub1}, {amount}), which
the partner replaces, so those braces must reach it unencoded.
"""

import re
from urllib.parse import parse_qsl, quote, urlsplit

LINK_MACRO_RE = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
CLICKID = "{{tracker.clickid}}"
FIELD_PREFIX = "fields."
MAPPING_RE = re.compile(r"^(?:fields\.)?([a-z0-9][a-z0-9_.-]{0,63})$")


def is_link_macro(name):
    return name == "tracker.clickid" or (
        name.startswith(FIELD_PREFIX) and len(name) > len(FIELD_PREFIX)
    )


def unknown_link_macros(template):
    """Double-brace names in `template` that are not ours, braced, each once."""
    seen = []
    for name in LINK_MACRO_RE.findall(template or ""):
        braced = "{{" + name + "}}"
        if not is_link_macro(name) and braced not in seen:
            seen.append(braced)
    return seen


def add_click_id(base_url, param):
    """base_url plus `param={{tracker.clickid}}`, unless it carries the click id already."""
    if not param or CLICKID in base_url.replace(" ", ""):
        return base_url
    query = urlsplit(base_url).query
    if any(name == param for name, _ in parse_qsl(query, keep_blank_values=True)):
        return base_url
    url, hash_sign, fragment = base_url.partition("#")
    sep = "&" if "?" in url else "?"
    if url.endswith(("?", "&")):
        sep = ""
    return f"{url}{sep}{quote(param, safe='')}={CLICKID}{hash_sign}{fragment}"


def query_with_macros(pairs):
    """A query string whose values keep {macros} literal for the partner to replace."""
    return "&".join(f"{quote(k, safe='.')}={quote(v, safe='{}.,-_')}" for k, v in pairs)


def parse_field_mappings(text):
    """Lines 'fields.<key>={macro}' (or '<key>={macro}') -> [(key, macro)]; ValueError."""
    result = []
    for n, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        m = MAPPING_RE.match(key.strip().lower())
        if not sep or not m or not value.strip():
            raise ValueError(
                f"line {n}: write 'fields.<key>={{partner macro}}', e.g. "
                f"fields.user_id={{user_id}}; got {line!r}"
            )
        result.append((m.group(1), value.strip()))
    return result
