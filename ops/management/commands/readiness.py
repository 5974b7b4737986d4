"""``readiness [--check NAME …] [--url URL]``: the /readyz report as JSON, for container
health checks. Exit status 0 when ready (or when the named checks pass), 1 otherwise.

``--url`` asks a running web process (as a load balancer would; the request is marked as
forwarded over HTTPS so production's redirect does not apply); without it the checks run in
this process against the same database, broker and cache."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from ops.health import readiness_report


class Command(BaseCommand):
    help = "Print the readiness report (JSON); exit 1 when not ready."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="append",
            default=[],
            help="Only these checks decide the exit status (database, broker, cache, beat, "
            "workers, outbox, providers).",
        )
        parser.add_argument("--url", help="Ask this /readyz URL instead of checking here.")

    def handle(self, *args, check: list[str], url: str | None, **options):
        report = self._fetch(url) if url else readiness_report(now=timezone.now())
        checks = report.get("checks", {})
        names = check or list(checks)
        ok = bool(checks) and all(checks.get(name, {}).get("ok") for name in names)
        self.stdout.write(json.dumps(report, default=str))
        if not ok:
            sys.exit(1)

    def _fetch(self, url: str) -> dict:
        hosts = [h for h in settings.ALLOWED_HOSTS if h and "*" not in h and not h.startswith(".")]
        request = urllib.request.Request(
            url,
            headers={"X-Forwarded-Proto": "https", **({"Host": hosts[0]} if hosts else {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=8) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                return json.loads(exc.read())
            except ValueError:
                return {"ready": False, "checks": {}, "error": f"HTTP {exc.code}"}
        except (OSError, ValueError) as exc:
            return {"ready": False, "checks": {}, "error": str(exc)}
