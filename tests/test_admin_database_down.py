"""With the database unreachable, a signed-in admin page answers 503 with a
short page saying so and Retry-After, not a 500 error page; once the
database is back the same page opens again.

The database is really gone, in this process: the connection is closed and
pointed at a SQLite file that cannot be opened (a folder that does not
exist), or at a PostgreSQL port where nothing listens (through a new pool,
which gives up after its wait, as it does in production).
"""

import contextlib

import pytest
from django.db import connection

from tests.test_outgoing_redis import free_port


@contextlib.contextmanager
def database_down(tmp_path):
    s = connection.settings_dict
    key, dead = ("NAME", str(tmp_path / "missing" / "db.sqlite3"))
    if connection.vendor == "postgresql":
        key, dead = ("PORT", str(free_port()))
    alive = s[key]
    reconnect()
    s[key] = dead
    try:
        yield
    finally:
        s[key] = alive
        reconnect()


def reconnect():
    """The next query opens a new connection (a new pool) with the settings then."""
    connection.close()
    if hasattr(connection, "close_pool"):
        connection.close_pool()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", ["/admin/", "/admin/postbacks/delivery/"])
def test_a_signed_in_admin_page_answers_503_while_the_database_is_down(
    client, admin_user, tmp_path, page
):
    client.force_login(admin_user)
    assert client.get(page).status_code == 200
    with database_down(tmp_path):
        answer = client.get(page)
    assert answer.status_code == 503
    assert answer["Retry-After"] == "10"
    assert answer["Content-Type"].startswith("text/html")
    text = answer.content.decode()
    assert "The database cannot be reached" in text
    assert "Try again in 10 seconds" in text
    # Back: the same session opens the page again.
    assert client.get(page).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_form_sent_while_the_database_is_down_answers_503(client, admin_user, tmp_path):
    client.force_login(admin_user)
    with database_down(tmp_path):
        answer = client.post("/admin/tracker/spot/add/", {"name": "Bot"})
    assert answer.status_code == 503
    assert "The database cannot be reached" in answer.content.decode()
