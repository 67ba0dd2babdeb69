from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "llm"
    verbose_name = "Models in the loop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks in every process that may send them by name.
        import llm.tasks  # noqa: F401
        from core.jobs import register_job_kind
        from llm.models import GenerationJob, JudgeRun
        from llm.services.generation import GENERATION_TASK
        from llm.services.judging import JUDGE_TASK

        # A lost generation job is sent again by the sweep: planning is idempotent, and its
        # pending calls are fanned out once more.
        register_job_kind(GenerationJob, task_name=GENERATION_TASK)
        # A lost judge run is retaken the same way: its pending verdicts are judged again.
        register_job_kind(JudgeRun, task_name=JUDGE_TASK)
        # The judge's verdicts on the prompt page and in `GET /api/prompts/{id}/`.
        from llm.services.prompt_panel import PANEL_KEY, PANEL_TEMPLATE, prompt_judge_panel
        from rankings.prompts.extras import register_prompt_extra

        register_prompt_extra(key=PANEL_KEY, template=PANEL_TEMPLATE, build=prompt_judge_panel)
