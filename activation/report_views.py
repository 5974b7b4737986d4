"""Campaign and run report pages and their CSV (admin URLs; permission: view campaign run).

Thin views over :mod:`activation.reports`; the numbers are formatted in the reader's language
(« 1 204 », « 17,5 % ») and the chart is drawn by the plotly bundle the other chart pages load.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import formats
from django.utils.translation import gettext as _

from activation.models import Campaign, CampaignRun, MessageChannel
from activation.reports import CampaignReport, Funnel, campaign_report, run_report
from activation.variants import experiment_links
from config.csv_export import csv_response

PERMISSION = "activation.view_campaignrun"


def _require_permission(request: HttpRequest) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied(_("You may not view campaign reports."))


def _number(value, digits: int = 0) -> str:
    return formats.number_format(value, decimal_pos=digits, use_l10n=True, force_grouping=True)


def _percent(count: int, of: int) -> str:
    if not of:
        return "—"
    return f"{_number(round(100 * count / of, 1), 1)} %"


def _funnel_rows(funnel: Funnel) -> list[dict]:
    """The funnel of one slice as (label, number, rate over delivered) rows."""
    d = funnel.delivered
    rows = [
        ("sent", _("Sent"), funnel.sent, ""),
        ("delivered", _("Delivered"), d, _percent(d, funnel.sent)),
        (
            "bounced_hard",
            _("Hard bounces"),
            funnel.bounced_hard,
            _percent(funnel.bounced_hard, funnel.sent),
        ),
        (
            "bounced_soft",
            _("Soft bounces"),
            funnel.bounced_soft,
            _percent(funnel.bounced_soft, funnel.sent),
        ),
        ("failed", _("Failed"), funnel.failed, ""),
        ("waiting", _("Waiting to be sent"), funnel.waiting, ""),
        (
            "human_opens",
            _("Human opens (unique)"),
            funnel.human_opens,
            _percent(funnel.human_opens, d),
        ),
        (
            "machine_opens",
            _("Machine opens (Apple MPP, scanners — not counted above)"),
            funnel.machine_opens,
            "",
        ),
        ("clickers", _("Clicks (unique clickers)"), funnel.clickers, _percent(funnel.clickers, d)),
        ("clicks", _("Clicks (all)"), funnel.clicks, ""),
        ("unsubscribes", _("Unsubscribes"), funnel.unsubscribes, _percent(funnel.unsubscribes, d)),
        ("complaints", _("Complaints"), funnel.complaints, _percent(funnel.complaints, d)),
        (
            "conversions",
            _("Attributed conversions"),
            funnel.conversions,
            _percent(funnel.conversions, d),
        ),
    ]
    return [
        {"key": key, "label": label, "value": _number(n), "rate": rate}
        for key, label, n, rate in rows
    ]


def _breakdown(report: CampaignReport) -> list[dict]:
    channels = dict(MessageChannel.choices)
    return [
        {
            "channel": channels.get(f.channel, f.channel),
            "variant": f.variant or "—",
            "sent": _number(f.sent),
            "delivered": _number(f.delivered),
            "bounced": _number(f.bounced),
            "human_opens": _number(f.human_opens),
            "machine_opens": _number(f.machine_opens),
            "clickers": _number(f.clickers),
            "unsubscribes": _number(f.unsubscribes),
            "complaints": _number(f.complaints),
            "conversions": _number(f.conversions),
            "revenue": _number(f.revenue, 2),
        }
        for f in report.breakdown
    ]


def _chart(report: CampaignReport) -> dict:
    """A plotly figure: human opens, clicks and conversions per hour (or day)."""
    xs = [p["at"] for p in report.timeline]
    series = (
        ("opens", _("Human opens")),
        ("clicks", _("Clicks")),
        ("conversions", _("Conversions")),
    )
    unit = _("per hour") if report.timeline_unit == "hour" else _("per day")
    return {
        "data": [
            {"type": "bar", "name": name, "x": xs, "y": [p[key] for p in report.timeline]}
            for key, name in series
        ],
        "layout": {
            "title": {"text": _("Since the send, %(unit)s (UTC)") % {"unit": unit}},
            "barmode": "group",
            "xaxis": {"type": "category"},
            "yaxis": {"rangemode": "tozero", "title": {"text": _("Count")}},
            "margin": {"l": 50, "r": 20, "t": 50, "b": 60},
            "height": 320,
        },
    }


def _outbox_url(report: CampaignReport, run, **filters) -> str:
    """The outbox list filtered to the run (or to the campaign's runs), and ``filters``."""
    scope = {"run__exact": run.pk} if run is not None else {}
    if run is None:
        scope = {"run__campaign__id__exact": report.campaign.pk}
    query = {**scope, **filters}
    return reverse("admin:activation_outboxmessage_changelist") + "?" + urlencode(query)


def _page(request: HttpRequest, report: CampaignReport, *, title: str, csv_url: str, run=None):
    total = report.total
    context = {
        **admin.site.each_context(request),
        "title": title,
        "opts": CampaignRun._meta if run is not None else Campaign._meta,
        "report": report,
        "run": run,
        "campaign": report.campaign,
        "audience": _number(report.audience),
        "exclusions": [
            {
                "reason": x.reason,
                "label": x.label,
                "at_launch": _number(x.at_launch),
                "now": _number(x.now),
            }
            for x in report.exclusions
        ],
        "funnel": _funnel_rows(total),
        "revenue": _number(total.revenue, 2),
        "breakdown": _breakdown(report),
        "links": [
            {"url": link.url, "clicks": _number(link.clicks), "clickers": _number(link.clickers)}
            for link in report.links
        ],
        "chart": _chart(report),
        "csv_url": csv_url,
        "outbox_url": _outbox_url(report, run),
        "outbox_sent_url": _outbox_url(report, run, state__exact="sent"),
        "outbox_failed_url": _outbox_url(report, run, state__exact="failed"),
        "experiments": experiment_links(campaign_id=report.campaign.pk),
        "runs": [
            {
                "run": r,
                "url": reverse("admin:activation_campaignrun_report", args=[r.pk]),
                "audience": _number(r.audience_size),
            }
            for r in report.runs
        ],
    }
    return render(request, "admin/activation/report.html", context)


def run_report_page(request: HttpRequest, pk: int) -> HttpResponse:
    _require_permission(request)
    run = get_object_or_404(CampaignRun.objects.select_related("campaign"), pk=pk)
    return _page(
        request,
        run_report(run),
        title=_("Report of %(run)s") % {"run": run},
        csv_url=reverse("admin:activation_campaignrun_report_csv", args=[run.pk]),
        run=run,
    )


def campaign_report_page(request: HttpRequest, pk: int) -> HttpResponse:
    _require_permission(request)
    campaign = get_object_or_404(Campaign, pk=pk)
    return _page(
        request,
        campaign_report(campaign),
        title=_("Report of the campaign %(name)s") % {"name": campaign.name},
        csv_url=reverse("admin:activation_campaign_report_csv", args=[campaign.pk]),
    )


def report_csv_rows(report: CampaignReport) -> Iterator[list]:
    """``metric, channel, variant, value`` lines: the totals (channel and variant blank), the
    exclusions per reason (``excluded:<reason>``, as at launch), each channel × variant, the
    clicks per URL (``clicks:<url>``, ``clickers:<url>``) and the timeline (``<kind>@<time>``).
    Machine-readable names, numbers unformatted (a dot for decimals)."""
    yield ["metric", "channel", "variant", "value"]
    yield ["runs", "", "", " ".join(str(pk) for pk in report.run_ids)]
    yield ["audience", "", "", report.audience]
    for x in report.exclusions:
        yield [f"excluded:{x.reason}", "", "", x.at_launch]
        yield [f"excluded_now:{x.reason}", "", "", x.now]
    for funnel in [report.total, *report.breakdown]:
        for metric in (
            "sent",
            "delivered",
            "bounced_hard",
            "bounced_soft",
            "failed",
            "waiting",
            "excluded",
            "human_opens",
            "machine_opens",
            "clickers",
            "clicks",
            "unsubscribes",
            "complaints",
            "conversions",
        ):
            yield [metric, funnel.channel, funnel.variant, getattr(funnel, metric)]
        yield ["revenue", funnel.channel, funnel.variant, f"{funnel.revenue:.2f}"]
    for link in report.links:
        yield [f"clicks:{link.url}", "", "", link.clicks]
        yield [f"clickers:{link.url}", "", "", link.clickers]
    for point in report.timeline:
        for kind in ("opens", "clicks", "conversions"):
            yield [f"{kind}@{point['at']}", "", "", point[kind]]


def run_report_csv(request: HttpRequest, pk: int) -> HttpResponse:
    _require_permission(request)
    run = get_object_or_404(CampaignRun.objects.select_related("campaign"), pk=pk)
    return csv_response(filename=f"run-{run.pk}-report.csv", rows=report_csv_rows(run_report(run)))


def campaign_report_csv(request: HttpRequest, pk: int) -> HttpResponse:
    _require_permission(request)
    campaign = get_object_or_404(Campaign, pk=pk)
    return csv_response(
        filename=f"campaign-{campaign.pk}-report.csv",
        rows=report_csv_rows(campaign_report(campaign)),
    )
