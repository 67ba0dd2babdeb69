from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks in every process that may send them by name.
        import labeling.tasks  # noqa: F401
        from core.jobs import register_job_kind
        from labeling.models import PromptSearchJob
        from labeling.services import search_index

        # Search jobs are swept with every other job kind; on every sweep, prompts left
        # pending (a failed job, a lost worker) get a job of their own.
        register_job_kind(
            PromptSearchJob,
            task_name=search_index.SEARCH_INDEX_TASK,
            clean_up=search_index.prompt_search_catch_up,
        )
