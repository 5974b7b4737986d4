"""Rule conditions contributed to the segments rule engine (registered in ``AppConfig.ready``).

- ``{"type": "cluster", "model": "<name>", "cluster": <stable id>}``: the contact is assigned to
  that stable cluster by the model's *active* version (so memberships follow when a new version
  is activated) and has not objected to profiling since.
- ``{"type": "ml_feature", "feature": "<catalogue name>", "op": "lte"|"lt"|"gt"|"gte",
  "value": <number>, "include_missing": <bool>}``: a threshold on the contact's latest ML feature
  snapshot (what a decision-tree leaf turns into). ``include_missing`` also matches contacts
  whose value is unknown.

Both compile to an ``Exists`` subquery (two-valued, so negation is exact).
"""

from __future__ import annotations

import operator
from datetime import datetime

from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from segments.ml.catalogue import FEATURES_BY_NAME
from segments.ml.models import ClusterAssignment, ClusterLabel, ClusterModel, ContactMlFeatures

FEATURE_OPS = {"lte": operator.le, "lt": operator.lt, "gt": operator.gt, "gte": operator.ge}
OP_SIGNS = {"lte": "≤", "lt": "<", "gt": ">", "gte": "≥"}


def _eligible_q() -> Q:
    from segments.ml.extraction import eligible_contacts

    return Q(pk__in=eligible_contacts().values("pk"))


# --- cluster -------------------------------------------------------------------------------------


def cluster_validate(condition: dict, ctx) -> dict:
    name = condition.get("model")
    cluster = condition.get("cluster")
    model = ClusterModel.objects.filter(name=name).first() if isinstance(name, str) else None
    if model is None:
        raise ctx.error(_("unknown cluster model “%(name)s”.") % {"name": name})
    if isinstance(cluster, bool) or not isinstance(cluster, int) or not 0 <= cluster < 2**31:
        raise ctx.error(_("“cluster” must be a cluster number (0 or more)."))
    version = model.active_version
    if version is not None and not version.clusters.filter(stable_id=cluster).exists():
        raise ctx.error(
            _("model “%(name)s” (version %(v)s) has no cluster %(id)s.")
            % {"name": name, "v": version.number, "id": cluster}
        )
    return {"type": "cluster", "model": name, "cluster": cluster}


def cluster_compile(condition: dict, ctx) -> Q:
    assigned = ClusterAssignment.objects.filter(
        contact_id=OuterRef("pk"),
        version__model__name=condition["model"],
        version__is_active=True,
        stable_id=condition["cluster"],
    )
    return Q(Exists(assigned)) & _eligible_q()


def cluster_evaluate(condition: dict, contact, now: datetime) -> bool:
    from segments.ml.extraction import eligible_contacts

    return (
        ClusterAssignment.objects.filter(
            contact_id=contact.contact.pk,
            version__model__name=condition["model"],
            version__is_active=True,
            stable_id=condition["cluster"],
        ).exists()
        and eligible_contacts().filter(pk=contact.contact.pk).exists()
    )


def cluster_describe(condition: dict) -> str:
    label = (
        ClusterLabel.objects.filter(model__name=condition["model"], stable_id=condition["cluster"])
        .values_list("name", flat=True)
        .first()
    )
    cluster = f"{condition['cluster']} « {label} »" if label else str(condition["cluster"])
    return gettext("is in cluster %(cluster)s of model %(model)s") % {
        "cluster": cluster,
        "model": condition["model"],
    }


def cluster_explain(condition: dict, contact, now: datetime) -> str:
    found = (
        ClusterAssignment.objects.filter(
            contact_id=contact.contact.pk,
            version__model__name=condition["model"],
            version__is_active=True,
        )
        .values_list("stable_id", flat=True)
        .first()
    )
    if found is None:
        return gettext("not assigned by the active version")
    return gettext("assigned to cluster %(id)s") % {"id": found}


# --- ml_feature ----------------------------------------------------------------------------------


def ml_feature_validate(condition: dict, ctx) -> dict:
    feature = condition.get("feature")
    if feature not in FEATURES_BY_NAME:
        raise ctx.error(
            _("unknown ML feature “%(feature)s” (known: %(known)s).")
            % {"feature": feature, "known": ", ".join(FEATURES_BY_NAME)}
        )
    op = condition.get("op")
    if op not in FEATURE_OPS:
        raise ctx.error(_("operator must be one of %(ops)s.") % {"ops": ", ".join(FEATURE_OPS)})
    value = condition.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ctx.error(_("“value” must be a number."))
    include_missing = condition.get("include_missing", False)
    if not isinstance(include_missing, bool):
        raise ctx.error(_("“include_missing” must be true or false."))
    return {
        "type": "ml_feature",
        "feature": feature,
        "op": op,
        "value": value,
        "include_missing": include_missing,
    }


def ml_feature_compile(condition: dict, ctx) -> Q:
    feature = condition["feature"]
    inner = Q(**{f"{feature}__{condition['op']}": condition["value"]})
    if condition.get("include_missing"):
        inner |= Q(**{f"{feature}__isnull": True})
    return Q(Exists(ContactMlFeatures.objects.filter(inner, contact_id=OuterRef("pk"))))


def ml_feature_evaluate(condition: dict, contact, now: datetime) -> bool:
    row = ContactMlFeatures.objects.filter(contact_id=contact.contact.pk).first()
    if row is None:
        return False
    value = getattr(row, condition["feature"])
    if value is None:
        return bool(condition.get("include_missing"))
    return FEATURE_OPS[condition["op"]](value, condition["value"])


def ml_feature_describe(condition: dict) -> str:
    label = FEATURES_BY_NAME[condition["feature"]].label
    text = f"{label} {OP_SIGNS[condition['op']]} {condition['value']:g}"
    if condition.get("include_missing"):
        text += " " + gettext("(or unknown)")
    return text


def ml_feature_explain(condition: dict, contact, now: datetime) -> str:
    row = ContactMlFeatures.objects.filter(contact_id=contact.contact.pk).first()
    value = getattr(row, condition["feature"]) if row else None
    return gettext("unknown") if value is None else f"{value:.3g}"


def register() -> None:
    """Register both condition types with the segments rule engine (no-op without it)."""
    try:
        from segments.rules.registry import register_condition
    except ImportError:  # the rule engine is not installed
        return
    register_condition(
        "cluster",
        cluster_compile,
        cluster_validate,
        cluster_describe,
        cluster_evaluate,
        explainer=cluster_explain,
        label=_("ML cluster"),
        builder={"subject": "cluster", "free": True},
    )
    register_condition(
        "ml_feature",
        ml_feature_compile,
        ml_feature_validate,
        ml_feature_describe,
        ml_feature_evaluate,
        explainer=ml_feature_explain,
        label=_("ML feature"),
        builder={
            "subject": "feature",
            "choices": [
                {"name": f.name, "label": str(f.label), "kind": "number", "ops": list(FEATURE_OPS)}
                for f in FEATURES_BY_NAME.values()
            ],
        },
    )
