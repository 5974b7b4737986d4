from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ScoringConfig(AppConfig):
    """Predictive scores (CLV, churn, purchase propensity) and cohorts, beside ``segments``."""

    name = "segments.scoring"
    label = "scoring"
    verbose_name = _("Predictive scores")
    default_auto_field = "django.db.models.BigAutoField"
