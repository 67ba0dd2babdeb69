from django.apps import AppConfig


class RedteamConfig(AppConfig):
    name = "authoring.redteam"
    label = "redteam"
    verbose_name = "Red teaming"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from authoring.redteam import handler, prompt_panel
        from labeling.task_kinds import register_task_kind
        from rankings.prompts.extras import register_prompt_extra
        from rankings.runs.extensions import register_run_extension

        register_task_kind(handler.RED_TEAM)
        register_run_extension(handler.EXTENSION, handler.red_team_agreement)
        register_prompt_extra(
            key=prompt_panel.PANEL_KEY,
            template=prompt_panel.PANEL_TEMPLATE,
            build=prompt_panel.prompt_red_team_panel,
        )
