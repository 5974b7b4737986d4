from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = _("Segments")

    def ready(self) -> None:
        from consent.exports import register_section
        from segments import receivers  # noqa: F401 - connects the signal receivers
        from segments.exports import memberships_export
        from segments.rules.conditions import register_builtin_conditions
        from segments.rules.consent_condition import register_consent_condition

        register_builtin_conditions()
        register_consent_condition()
        register_section("memberships", memberships_export)
