"""Take the screenshots of docs/campaigns.md (not a test).

Usage: ``.venv/bin/python docs/screenshots/take.py`` — sets up the demo database (``run_demo
--no-serve``, idempotent; set ``CIBLE_VAR_DIR`` to use another folder than var/), starts the
web server on a free port, logs in as the demo admin with headless Chromium (/usr/bin/chromium)
and writes ``docs/screenshots/campaigns-*.png``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def prepare(env: dict) -> None:
    """Demo data, segments computed, one workflow advanced, one approval waiting."""
    manage("run_demo", "--no-serve", "--contacts", "2000", env=env)
    code = (
        "from django.utils import timezone\n"
        "from django.contrib.auth import get_user_model\n"
        "from segments.services import features_refresh, segments_compute\n"
        "from activation.journeys.services import workflows_advance, approval_request\n"
        "from activation.journeys.models import CampaignApproval\n"
        "from activation.models import Campaign\n"
        "features_refresh()\n"
        "segments_compute()\n"
        "from activation.journeys.services import campaign_launch_now\n"
        "from activation.journeys.models import ScheduledOccurrence\n"
        "winback = Campaign.objects.get(name='Reconquête des acheteurs inactifs')\n"
        "if not ScheduledOccurrence.objects.filter(schedule__campaign=winback).exists():\n"
        "    campaign_launch_now(campaign=winback, now=timezone.now())\n"
        "workflows_advance(now=timezone.now())\n"
        "if not CampaignApproval.objects.exists():\n"
        "    user = get_user_model().objects.get(username='admin')\n"
        "    approval_request(campaign=Campaign.objects.get(name='Reconquête des acheteurs inactifs'),"
        " user=user, now=timezone.now())\n"
    )
    manage("shell", "-c", code, env=env)


def shoot(base: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
        page.goto(f"{base}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "cible-demo")
        with page.expect_navigation():
            page.click("#login-form [type=submit]")

        def open_change(changelist: str, text: str) -> None:
            page.goto(f"{base}{changelist}")
            page.get_by_role("link", name=text, exact=True).first.click()
            page.wait_for_load_state()

        open_change("/admin/journeys/workflow/", "Série de bienvenue")
        page.screenshot(path=OUT / "campaigns-welcome-workflow.png", full_page=True)
        open_change("/admin/journeys/campaignschedule/", "Série de bienvenue")
        page.screenshot(path=OUT / "campaigns-welcome-trigger.png", full_page=True)
        open_change("/admin/journeys/workflow/", "Reconquête des acheteurs inactifs")
        page.screenshot(path=OUT / "campaigns-winback-workflow.png", full_page=True)
        open_change("/admin/journeys/campaignschedule/", "Reconquête des acheteurs inactifs")
        page.screenshot(path=OUT / "campaigns-winback-schedule.png", full_page=True)
        open_change("/admin/journeys/campaignschedule/", "VIP — avant-première")
        page.screenshot(path=OUT / "campaigns-vip-schedule.png", full_page=True)
        page.goto(f"{base}/admin/journeys/campaignschedule/calendar/")
        page.screenshot(path=OUT / "campaigns-calendar.png", full_page=True)
        page.goto(f"{base}/admin/journeys/workflow/")
        row = page.locator("#result_list tr", has_text="Reconquête des acheteurs inactifs")
        row.get_by_role("link", name="Entonnoir").click()
        page.wait_for_load_state()
        page.screenshot(path=OUT / "campaigns-funnel.png", full_page=True)
        page.goto(f"{base}/admin/journeys/campaignapproval/")
        page.locator("#result_list tbody a").first.click()
        page.wait_for_load_state()
        page.screenshot(path=OUT / "campaigns-approval.png", full_page=True)
        browser.close()


def main() -> int:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "DEBUG": "1"}
    prepare(env)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        shoot(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    print("Screenshots written to", OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
