from django.apps import AppConfig


class RankingsConfig(AppConfig):
    name = "rankings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks in every process that may send them by name.
        import rankings.runs.tasks  # noqa: F401
        from core.jobs import register_job_kind
        from labeling.models import TaskKind
        from labeling.setting_checks import register_setting_check
        from labeling.task_kinds import TaskKindHandler, register_task_kind
        from rankings.models import AgreementRun, AgreementRunPart
        from rankings.quality import findings, thresholds
        from rankings.rating.api.views import rank_next_task
        from rankings.rating.views import rank_page
        from rankings.runs import parts, services

        # Agreement runs are swept with every other job kind; an abandoned run's parts
        # and the prompt rows they stored are removed.
        register_job_kind(
            AgreementRun, task_name=services.COMPUTE_TASK, on_abandoned=parts.clear_run_parts
        )
        # A run's parts: a lost part message is sent again; the run fails when a part does.
        register_job_kind(AgreementRunPart, task_name=parts.PART_TASK)
        # A project's flag thresholds are refused at the edge when the rules would ignore them.
        register_setting_check("quality_settings", thresholds.quality_settings_problems)
        register_task_kind(
            TaskKindHandler(kind=TaskKind.RANK, next_task=rank_next_task, rater_page=rank_page)
        )
        services.agreement_run_finished.connect(
            findings.on_agreement_run_finished, sender=AgreementRun, dispatch_uid="run-findings"
        )
