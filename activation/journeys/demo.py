"""The seed article's three examples, created (once) for ``make demo``:

- "Série de bienvenue": new sign-ups enter → email → wait 2 days → opened? else SMS; exits on
  purchase;
- "Reconquête des acheteurs inactifs": every Monday 9:00 (Paris) → email → wait 3 days →
  converted? else SMS; exits on purchase or when the contact leaves the segment; once per
  90 days;
- "VIP — avant-première": a push in three days at 10:00 in each contact's own time zone.

The segments they target are created through the segments app's services and computed by a
worker; the workflows then run on their own (beat sweep every minute).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction

from activation.journeys.models import CampaignSchedule, Workflow, WorkflowStep
from activation.journeys.services import schedule_save, workflow_steps_sync
from activation.models import Campaign, CampaignStatus, Template, TemplateVersion

SEGMENTS = {
    "Nouveaux inscrits (7 jours)": {
        "all": [{"type": "feature", "feature": "days_since_signup", "op": "lte", "value": 7}]
    },
    "Acheteurs inactifs (90–365 jours)": {
        "all": [{"type": "feature", "feature": "recency_days", "op": "between", "value": [90, 365]}]
    },
    "VIP (500 € et plus)": {
        "all": [{"type": "feature", "feature": "monetary_total", "op": "gte", "value": 500}]
    },
}

TEMPLATES = {
    "Bienvenue — email": (
        "email",
        {
            "fr": {
                "subject": "Bienvenue {{ contact.first_name|default:'' }} !",
                "html": "<p>Bonjour {{ contact.first_name|default:'' }},</p><p>Merci de votre "
                'inscription. <a href="https://boutique.example.fr/nouveautes">Découvrez nos '
                'nouveautés</a>.</p><p><a href="{{ unsubscribe_url }}">Se désabonner</a></p>',
            },
            "en": {
                "subject": "Welcome {{ contact.first_name|default:'' }}!",
                "html": "<p>Hello {{ contact.first_name|default:'' }},</p><p>Thanks for signing "
                'up. <a href="https://boutique.example.fr/nouveautes">See what\'s new</a>.</p>'
                '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
            },
        },
    ),
    "Bienvenue — relance SMS": (
        "sms",
        {
            "fr": {
                "sms_body": "{{ contact.first_name|default:'' }}, -10% sur votre 1re commande : BIENVENUE10"
            },
            "en": {
                "sms_body": "{{ contact.first_name|default:'' }}, 10% off your first order: WELCOME10"
            },
        },
    ),
    "Reconquête — email": (
        "email",
        {
            "fr": {
                "subject": "Vous nous manquez, {{ contact.first_name|default:'' }}",
                "html": "<p>Cela fait {{ features.recency_days|default:'quelques' }} jours… "
                '<a href="https://boutique.example.fr/retour">-15% pour votre retour</a>.</p>'
                '<p><a href="{{ unsubscribe_url }}">Se désabonner</a></p>',
            }
        },
    ),
    "Reconquête — SMS": (
        "sms",
        {"fr": {"sms_body": "{{ contact.first_name|default:'' }}, -15% avec le code RETOUR15"}},
    ),
    "VIP — push": (
        "push",
        {
            "fr": {
                "push_title": "Avant-première VIP",
                "push_body": "{{ contact.first_name|default:'' }}, la collection est à vous 24 h avant tout le monde.",
                "push_url": "https://boutique.example.fr/vip",
            }
        },
    ),
}


def _segment(name: str):
    from segments.models import Segment
    from segments.services import segment_create

    existing = Segment.objects.filter(name=name).first()
    return existing or segment_create(name=name, rule=SEGMENTS[name])


def _template(name: str) -> Template:
    channel, versions = TEMPLATES[name]
    template, created = Template.objects.get_or_create(name=name, defaults={"channel": channel})
    if created:
        for locale, fields in versions.items():
            TemplateVersion.objects.create(template=template, locale=locale, **fields)
    return template


def _campaign(name: str, *, purpose: str, template: Template, segment) -> Campaign | None:
    from consent.models import Purpose

    if Campaign.objects.filter(name=name).exists():
        return None
    campaign = Campaign.objects.create(
        name=name,
        purpose=Purpose.objects.get(code=purpose),
        channel=template.channel,
        template=template,
        status=CampaignStatus.ACTIVE,
    )
    campaign.segments.add(segment)
    return campaign


def _steps(workflow: Workflow, steps: list[dict]) -> None:
    for position, fields in enumerate(steps, start=1):
        WorkflowStep.objects.create(workflow=workflow, position=position, **fields)


def demo_campaigns_create(*, now: datetime) -> list[Campaign]:
    """Create the three example campaigns and their segments unless they exist; returns the
    campaigns created now (empty on a second call)."""
    created = []
    paris = ZoneInfo("Europe/Paris")
    with transaction.atomic():
        new, lapsed, vip = (_segment(name) for name in SEGMENTS)
        welcome = _campaign(
            "Série de bienvenue",
            purpose="newsletter",
            template=_template("Bienvenue — email"),
            segment=new,
        )
        if welcome is not None:
            workflow = Workflow.objects.create(campaign=welcome, goal_event_type="purchase")
            _steps(
                workflow,
                [
                    {"kind": "send", "channel": "email", "template": welcome.template},
                    {"kind": "wait", "wait_hours": 48},
                    {"kind": "branch", "condition": "opened", "condition_step": 1, "yes_goto": 5},
                    {
                        "kind": "send",
                        "channel": "sms",
                        "template": _template("Bienvenue — relance SMS"),
                    },
                    {"kind": "exit"},
                ],
            )
            workflow_steps_sync(workflow=workflow, now=now)
            schedule_save(
                schedule=CampaignSchedule(
                    campaign=welcome, kind="segment_entry", trigger_segment=new, reentry="once"
                ),
                now=now,
            )
            created.append(welcome)
        winback = _campaign(
            "Reconquête des acheteurs inactifs",
            purpose="promotions",
            template=_template("Reconquête — email"),
            segment=lapsed,
        )
        if winback is not None:
            workflow = Workflow.objects.create(
                campaign=winback, goal_event_type="purchase", exit_on_segment_exit=True
            )
            _steps(
                workflow,
                [
                    {"kind": "send", "channel": "email", "template": winback.template},
                    {"kind": "wait", "wait_hours": 72},
                    {"kind": "branch", "condition": "converted", "yes_goto": 5},
                    {"kind": "send", "channel": "sms", "template": _template("Reconquête — SMS")},
                    {"kind": "exit"},
                ],
            )
            workflow_steps_sync(workflow=workflow, now=now)
            schedule_save(
                schedule=CampaignSchedule(
                    campaign=winback,
                    kind="recurring",
                    timezone="Europe/Paris",
                    cron_minute="0",
                    cron_hour="9",
                    cron_day_of_week="1",
                    reentry="every_n_days",
                    reentry_days=90,
                ),
                now=now,
            )
            created.append(winback)
        push = _campaign(
            "VIP — avant-première",
            purpose="promotions",
            template=_template("VIP — push"),
            segment=vip,
        )
        if push is not None:
            day = (now.astimezone(paris) + timedelta(days=3)).date()
            schedule_save(
                schedule=CampaignSchedule(
                    campaign=push,
                    kind="one_off",
                    timezone="Europe/Paris",
                    run_at=datetime.combine(day, time(0, 0), tzinfo=paris),
                    local_send_time=time(10, 0),
                ),
                now=now,
            )
            created.append(push)
    if created:
        from segments.services import segment_compute_request

        segment_compute_request(segment_ids=[new.pk, lapsed.pk, vip.pk])
    return created
