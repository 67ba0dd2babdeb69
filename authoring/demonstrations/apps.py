from django.apps import AppConfig


class DemonstrationsConfig(AppConfig):
    name = "authoring.demonstrations"
    label = "demonstrations"
    verbose_name = "Demonstrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from authoring.demonstrations import options
        from authoring.demonstrations.api.views import demonstration_next_task
        from authoring.demonstrations.views import demonstration_page
        from labeling.models import TaskKind
        from labeling.task_kinds import TaskKindHandler, register_task_kind

        register_task_kind(
            TaskKindHandler(
                kind=TaskKind.DEMONSTRATION,
                next_task=demonstration_next_task,
                rater_page=demonstration_page,
                clean_options=options.clean_options,
                min_responses=options.min_responses,
            )
        )
