from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, as Django requires: models and services need the app registry.
        from core.jobs import register_job_kind
        from exports.models import ExportJob
        from exports.services import export_job_abandoned

        register_job_kind(ExportJob, on_abandoned=export_job_abandoned)
