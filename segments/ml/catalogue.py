"""The catalogue of clustering features: what each one means, how it is transformed, how a
profile describes a cluster that is high or low on it.

Every feature is a column of ``ContactMlFeatures`` (computed by ``segments.ml.extraction``).
Skewed counts, amounts and day counts are ``log1p``-transformed before scaling; shares are in
[0, 1] and used as they are. Adding a feature = a column on ``ContactMlFeatures`` + its SQL
expression in ``extraction`` + an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Feature:
    name: str
    label: Promise
    log: bool  # log1p before scaling (skewed counts, amounts, durations)
    high: Promise  # plain words for a cluster well above the base
    low: Promise  # ... and well below it
    default: bool = True  # part of the default feature set of a new model
    group: str = "behaviour"  # behaviour | habits | sociodemographics | features


FEATURES: tuple[Feature, ...] = (
    Feature("events_total", _("events"), True, _("very active"), _("barely active")),
    Feature("purchases", _("purchases"), True, _("buys often"), _("rarely buys")),
    Feature(
        "spend_total", _("total spent"), True, _("spends a lot"), _("spends little"), default=False
    ),
    Feature("avg_basket", _("average basket"), True, _("big baskets"), _("small baskets")),
    Feature(
        "days_since_last_event",
        _("days since last activity"),
        True,
        _("inactive for a long time"),
        _("active recently"),
    ),
    Feature(
        "days_since_first_event",
        _("days since first activity"),
        True,
        _("long-standing customer"),
        _("recent customer"),
    ),
    Feature(
        "days_since_last_purchase",
        _("days since last purchase"),
        True,
        _("has not bought for a long time"),
        _("bought recently"),
        default=False,
    ),
    Feature(
        "days_since_signup",
        _("days since sign-up"),
        True,
        _("signed up long ago"),
        _("signed up recently"),
        default=False,
    ),
    Feature(
        "share_purchase",
        _("share of purchases among events"),
        False,
        _("mostly buys"),
        _("seldom converts"),
    ),
    Feature(
        "share_email_open",
        _("share of email opens"),
        False,
        _("opens emails"),
        _("ignores emails"),
    ),
    Feature(
        "share_email_click",
        _("share of email clicks"),
        False,
        _("clicks in emails"),
        _("rarely clicks in emails"),
    ),
    Feature(
        "share_page_view",
        _("share of page views"),
        False,
        _("browses a lot"),
        _("browses little"),
    ),
    Feature(
        "share_cart_updated",
        _("share of cart updates"),
        False,
        _("fills carts"),
        _("rarely fills carts"),
    ),
    Feature(
        "share_app_open",
        _("share of app opens"),
        False,
        _("uses the app"),
        _("rarely uses the app"),
    ),
    Feature(
        "share_desktop",
        _("share of desktop events"),
        False,
        _("on desktop"),
        _("seldom on desktop"),
        group="habits",
    ),
    Feature(
        "share_mobile",
        _("share of mobile events"),
        False,
        _("on mobile"),
        _("seldom on mobile"),
        group="habits",
    ),
    Feature(
        "share_tablet",
        _("share of tablet events"),
        False,
        _("on tablet"),
        _("seldom on tablet"),
        default=False,
        group="habits",
    ),
    Feature(
        "share_channel_email",
        _("share of email channel"),
        False,
        _("reached through email"),
        _("seldom reached through email"),
        default=False,
        group="habits",
    ),
    Feature(
        "share_channel_web",
        _("share of web channel"),
        False,
        _("on the website"),
        _("seldom on the website"),
        default=False,
        group="habits",
    ),
    Feature(
        "share_channel_app",
        _("share of app channel"),
        False,
        _("in the app"),
        _("seldom in the app"),
        default=False,
        group="habits",
    ),
    Feature(
        "purchase_weekend_share",
        _("share of purchases at the weekend"),
        False,
        _("buys at the weekend"),
        _("buys on weekdays"),
        default=False,
        group="habits",
    ),
    Feature(
        "purchase_month_end_share",
        _("share of purchases in the last 5 days of the month"),
        False,
        _("buys at month end"),
        _("avoids month-end purchases"),
        default=False,
        group="habits",
    ),
    Feature(
        "age",
        _("age"),
        False,
        _("older"),
        _("younger"),
        default=False,
        group="sociodemographics",
    ),
    Feature(
        "engagement_score",
        _("engagement score"),
        True,
        _("highly engaged"),
        _("little engaged"),
        default=False,
        group="features",
    ),
    Feature(
        "mean_interpurchase_days",
        _("mean days between purchases"),
        True,
        _("long gaps between purchases"),
        _("short gaps between purchases"),
        default=False,
        group="features",
    ),
)

FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def default_feature_names() -> list[str]:
    """The feature set of a new model: behaviour, event-type mix and device habits.

    Weekend/month-end shares, age and the segments features are opt-in: on bases where they
    carry no structure they only add noise dimensions that blur the clusters.
    """
    return [f.name for f in FEATURES if f.default]
