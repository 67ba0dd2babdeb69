from django.apps import AppConfig


class RankingsConfig(AppConfig):
    name = "rankings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks in every process that may send them by name.
        import rankings.runs.tasks  # noqa: F401
        from core.jobs import register_job_kind
        from labeling.setting_checks import register_setting_check
        from rankings.models import AgreementRun
        from rankings.quality import findings, thresholds
        from rankings.runs import services

        # Agreement runs are swept with every other job kind; an abandoned run leaves no
        # rows behind (they are stored in the transaction that finishes it).
        register_job_kind(AgreementRun, task_name=services.COMPUTE_TASK)
        # A project's flag thresholds are refused at the edge when the rules would ignore them.
        register_setting_check("quality_settings", thresholds.quality_settings_problems)
        services.agreement_run_finished.connect(
            findings.on_agreement_run_finished, sender=AgreementRun, dispatch_uid="run-findings"
        )
