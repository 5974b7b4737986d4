"""Embedded mail sink: one ``.eml`` file per message under ``var/mail/`` (an absolute
``filemail:///path`` stays absolute), and the admin's "Sent messages" page to read them."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User

from activation.services import campaign_run_launch, outbox_deliver_batch
from tests.activation.conftest import NOW

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sink(settings, tmp_path):
    settings.EMAIL_BACKEND = "activation.channels.mailsink.EmlDirectoryBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    return tmp_path / "mail"


def deliver():
    while outbox_deliver_batch(channel="email", limit=2, now=NOW).claimed:
        pass


def test_each_message_is_its_own_eml_file(sink, consenting, make_campaign):
    contacts = consenting(5, first_name="Zoé")
    campaign_run_launch(campaign=make_campaign(contacts), now=NOW)
    deliver()  # batches of 2: one backend connection carries several messages

    files = sorted(sink.glob("*.eml"))
    assert len(files) == 5
    recipients = set()
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients.add(message["To"])
        assert message["Subject"] == "Bonjour Zoé !"
        assert "Bonjour Zoé," in message.get_body(("html",)).get_content()
    assert recipients == {c.email for c in contacts}
    assert not list(sink.glob(".*"))  # no temporary file left


@pytest.mark.parametrize(
    ("url", "expected"),
    [("filemail:///tmp/cible-sink/mail", "/tmp/cible-sink/mail"), ("", "{var}/mail")],
)
def test_mail_sink_folder_keeps_an_absolute_path_absolute(url, expected):
    env = {k: v for k, v in os.environ.items() if k != "EMAIL_URL"}
    if url:
        env["EMAIL_URL"] = url
    code = (
        "from django.conf import settings; "
        "print(settings.EMAIL_BACKEND, settings.EMAIL_FILE_PATH, settings.VAR_DIR)"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.local"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()[-3:]
    backend, folder, var = out
    assert backend == "activation.channels.mailsink.EmlDirectoryBackend"
    assert folder == expected.format(var=var)


def staff(*perms) -> User:
    user = User.objects.create_user("camille", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    return User.objects.get(pk=user.pk)


def test_sent_messages_page_lists_and_shows_the_mail(client, sink, consenting, make_campaign):
    contacts = consenting(2, first_name="Zoé")
    campaign_run_launch(campaign=make_campaign(contacts), now=NOW)
    deliver()
    client.force_login(staff("view_outboxmessage"))

    outbox = client.get("/admin/activation/outboxmessage/").content.decode()
    assert "/admin/activation/outboxmessage/sent-mail/" in outbox
    page = client.get("/admin/activation/outboxmessage/sent-mail/").content.decode()
    assert "2 messages" in page
    assert all(c.email in page for c in contacts) and "Bonjour Zoé !" in page

    name = sorted(p.name for p in sink.glob("*.eml"))[0]
    shown = client.get(f"/admin/activation/outboxmessage/sent-mail/{name}/")
    body = shown.content.decode()
    assert shown.status_code == 200 and "Bonjour Zoé !" in body
    assert 'sandbox=""' in body and "Bonjour Zoé," in body
    download = client.get(f"/admin/activation/outboxmessage/sent-mail/{name}/?download=1")
    assert download["Content-Type"] == "message/rfc822"
    assert download.content == (sink / name).read_bytes()


def test_sent_messages_need_view_permission_on_the_outbox(client, sink):
    client.force_login(staff())
    assert client.get("/admin/activation/outboxmessage/sent-mail/").status_code == 403


def test_sent_messages_never_open_a_file_outside_the_sink(client, sink, tmp_path):
    (tmp_path / "secret.eml").write_text("Subject: secret\n\nno")
    client.force_login(staff("view_outboxmessage"))
    for name in ("secret.eml", "20260101-000000-000000-zzzzzzzzzzzz.eml"):
        response = client.get(f"/admin/activation/outboxmessage/sent-mail/{name}/")
        assert response.status_code == 404
    # A slash never reaches the view (the admin treats it as an unknown outbox row).
    response = client.get("/admin/activation/outboxmessage/sent-mail/..%2Fsecret.eml/", follow=True)
    assert b"Subject" not in response.content and b"secret</td>" not in response.content


def test_no_sent_messages_page_when_mail_really_leaves(client, smtp_settings):
    client.force_login(staff("view_outboxmessage"))
    assert client.get("/admin/activation/outboxmessage/sent-mail/").status_code == 404
    outbox = client.get("/admin/activation/outboxmessage/").content.decode()
    assert "sent-mail/" not in outbox
