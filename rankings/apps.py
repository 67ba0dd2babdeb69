from django.apps import AppConfig


class RankingsConfig(AppConfig):
    name = "rankings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks in every process that may send them by name.
        import rankings.runs.tasks  # noqa: F401
        from core.jobs import register_job_kind
        from rankings.models import AgreementRun
        from rankings.quality import findings
        from rankings.runs import services

        # Agreement runs are swept with every other job kind; an abandoned run leaves no
        # rows behind (they are stored in the transaction that finishes it).
        register_job_kind(AgreementRun)
        services.agreement_run_finished.connect(
            findings.on_agreement_run_finished, sender=AgreementRun, dispatch_uid="run-findings"
        )
