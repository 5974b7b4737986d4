"""Workflow benchmark on the seeded population (PostgreSQL): enrol every contact in a workflow
(one ``INSERT … SELECT``), advance them through a send step (outbox rows for everyone with
activation's eligibility rules, in one statement, plus the move) and a branch step — compared
with a plain ``INSERT … SELECT`` of the contact ids (the floor) and with activation's own
one-shot launch of the same audience (``campaign_run_launch``).

Targets (1,000,000 contacts): enrolment ≤ 30 s; the send step ≤ 1.5 × activation's launch of
the same audience (same rules, plus the enrolment bookkeeping).
"""

from __future__ import annotations

import os

from benchmarks.harness import Context, Result, timed


def _cleanup() -> None:
    """Remove what an earlier run on a kept cluster (``--keep``) left behind."""
    from django.db import connection

    from activation.models import Campaign
    from segments.models import Segment

    campaigns = list(
        Campaign.objects.filter(name__startswith="bench workflow").values_list("pk", flat=True)
    )
    segments = list(
        Segment.objects.filter(name__startswith="bench: everyone").values_list("pk", flat=True)
    )
    # The large tables only: the few rows of campaigns, steps and templates stay (a send
    # step's campaign is protected), each run names its own.
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM journeys_workflowenrollment WHERE workflow_id IN "
            "(SELECT id FROM journeys_workflow WHERE campaign_id = ANY(%s))",
            [campaigns],
        )
        runs = "(SELECT id FROM activation_campaignrun WHERE campaign_id = ANY(%s))"
        cursor.execute(  # attempts of rows another module's workers delivered (before 12-06)
            "DELETE FROM activation_deliveryattempt WHERE message_id IN "  # noqa: S608
            f"(SELECT id FROM activation_outboxmessage WHERE run_id IN {runs})",
            [campaigns],
        )
        cursor.execute(
            f"DELETE FROM activation_outboxmessage WHERE run_id IN {runs}",  # noqa: S608
            [campaigns],
        )
        cursor.execute(
            "DELETE FROM segments_segmentmembership WHERE segment_id = ANY(%s)", [segments]
        )
        # Each run rewrites every enrolment a few times: without a vacuum the next run on the
        # kept cluster would scan the dead rows of all the earlier ones.
        cursor.execute("VACUUM journeys_workflowenrollment, activation_outboxmessage")


def run(ctx: Context) -> None:
    from django.db import connection
    from django.utils import timezone

    from activation.journeys.enrollment import enrollments_create, workflow_advance
    from activation.journeys.models import Workflow, WorkflowEnrollment, WorkflowStep
    from activation.journeys.services import workflow_steps_sync
    from activation.models import Campaign, OutboxMessage, Template, TemplateVersion
    from activation.services import campaign_run_launch
    from consent.models import Purpose
    from contacts.models import Contact
    from segments.models import Segment

    _cleanup()
    now = timezone.now()
    stamp = now.strftime("%Y%m%d%H%M%S")
    contacts = Contact.objects.count()
    template = Template.objects.create(name=f"bench journeys {stamp}", channel="email")
    TemplateVersion.objects.create(
        template=template, locale="fr", subject="Bonjour {{ contact.first_name }}", html="<p>x</p>"
    )
    # Memberships written below; inactive, so no scheduled or real-time computation (another
    # module's, on the same kept cluster) evaluates it.
    segment = Segment.objects.create(
        name=f"bench: everyone {stamp}", rule={"all": []}, is_active=False
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO segments_segmentmembership (segment_id, contact_id, entered_at) "
            "SELECT %s, id, %s FROM contacts_contact",
            [segment.pk, now],
        )
        cursor.execute("ANALYZE")
    purpose = Purpose.objects.get(code="newsletter")
    campaign = Campaign.objects.create(
        name=f"bench workflow {stamp}",
        purpose=purpose,
        channel="email",
        template=template,
        status="active",
    )
    campaign.segments.add(segment)
    workflow = Workflow.objects.create(campaign=campaign)
    WorkflowStep.objects.create(
        workflow=workflow, position=1, kind="send", channel="email", template=template
    )
    WorkflowStep.objects.create(
        workflow=workflow,
        position=2,
        kind="branch",
        condition="opened",
        condition_step=1,
        yes_goto=3,
    )
    WorkflowStep.objects.create(workflow=workflow, position=3, kind="wait", wait_hours=24)
    workflow_steps_sync(workflow=workflow, now=now)

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_ids AS SELECT id FROM contacts_contact WHERE false")
        with timed() as ids_only:
            cursor.execute("INSERT INTO bench_ids SELECT id FROM contacts_contact")
        cursor.execute("DROP TABLE bench_ids")
        # The floor: the same enrolment rows written by a bare INSERT … SELECT (no re-entry
        # rules, no conflict check) into an empty table with the enrolments' indexes.
        cursor.execute("DROP TABLE IF EXISTS bench_enrollment_floor")
        cursor.execute(
            "CREATE TABLE bench_enrollment_floor (LIKE journeys_workflowenrollment "
            "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
        with timed() as floor:
            cursor.execute(
                "INSERT INTO bench_enrollment_floor (workflow_id, contact_id, entry, position, "
                "state, exit_reason, entered_at, due_at) "
                "SELECT %s, id, 1, 0, 'active', '', %s, %s FROM contacts_contact",
                [workflow.pk, now, now],
            )
        cursor.execute("DROP TABLE bench_enrollment_floor")

    with timed() as enrol:
        enrolled = enrollments_create(
            workflow=workflow, contacts=Contact.objects.all(), entered_at=now
        )
    ratio = enrol["seconds"] / max(floor["seconds"], 1e-9)
    ctx.record(
        Result(
            benchmark="journeys enrol every contact",
            value=enrol["seconds"],
            unit="s",
            target="≤ 2× a bare INSERT … SELECT of the same rows",
            passed=ratio <= 2.0,
            comparison=f"bare INSERT … SELECT of the same {contacts:,} rows into an empty table "
            f"with the same indexes: {floor['seconds']:.1f} s (ratio {ratio:.2f}); of the ids "
            f"alone into a table without index: {ids_only['seconds']:.1f} s",
            details={
                "contacts": contacts,
                "enrolled": enrolled,
                "floor_seconds": round(floor["seconds"], 3),
                "ratio": round(ratio, 2),
                "ids_only_seconds": round(ids_only["seconds"], 3),
            },
        )
    )
    if os.environ.get("BENCH_JOURNEYS_SWEEP", "1") == "0":
        _cleanup()
        return  # enrolment only (the sweep below takes long on a large base)
    full_scale = contacts >= 1_000_000
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE journeys_workflowenrollment")

    now = timezone.now()
    with timed() as advance:
        # The sweep works in chunks (JOURNEYS_ADVANCE_CHUNK) per step; loop until all moved on.
        while WorkflowEnrollment.objects.filter(
            workflow=workflow, state="active", position__in=[0, 1, 2], due_at__lte=now
        ).exists():
            workflow_advance(workflow=workflow)  # live clock, as beat runs it
    now = timezone.now()
    outbox_rows = OutboxMessage.objects.filter(run__campaign=campaign).count()

    with timed() as launch:
        run = campaign_run_launch(campaign=campaign, now=now)
    ratio = advance["seconds"] / max(launch["seconds"], 1e-9)
    ctx.record(
        Result(
            benchmark="journeys send + branch steps for every contact",
            value=advance["seconds"],
            unit="s",
            target="≤ 1.5 × activation's one-shot launch of the same audience",
            passed=(ratio <= 1.5) if full_scale else None,
            comparison=f"campaign_run_launch of the same audience: {launch['seconds']:.1f} s "
            f"(ratio {ratio:.2f})",
            details={"outbox_rows": outbox_rows, "launch_rows": run.audience_size},
        )
    )
    # No queued rows left behind: another module's delivery workers would send them.
    _cleanup()
