from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, as Django requires: models and services need the app registry.
        from core.jobs import register_job_kind
        from exports.models import ExportJob
        from exports.services import EXPORT_TASK, export_job_abandoned
        from exports.services.jobs import export_staged_files_clean_up

        register_job_kind(
            ExportJob,
            task_name=EXPORT_TASK,
            on_abandoned=export_job_abandoned,
            clean_up=export_staged_files_clean_up,
        )
