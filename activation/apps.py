from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ActivationConfig(AppConfig):
    name = "activation"
    verbose_name = _("Activation")

    def ready(self) -> None:
        from activation import receivers  # noqa: F401  (connects the signal receivers)
        from activation.services import contact_messages_export
        from consent.exports import register_section

        register_section("messages", contact_messages_export)
