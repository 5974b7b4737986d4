from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ScoringConfig(AppConfig):
    """Predictive scores (CLV, churn, purchase propensity) and cohorts, beside ``segments``."""

    name = "segments.scoring"
    label = "scoring"
    verbose_name = _("Predictive scores")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from contacts.hooks import contact_detail_sections
        from segments.scoring.conditions import register_scoring_conditions
        from segments.scoring.selectors import contact_scores

        register_scoring_conditions()
        contact_detail_sections["scores"] = contact_scores
