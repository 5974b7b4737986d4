from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = _("Operations")

    def ready(self) -> None:
        from ops.roles import roles_sync

        post_migrate.connect(roles_sync, dispatch_uid="cible-roles-sync")

        from ops.metrics import metrics_register

        metrics_register()
