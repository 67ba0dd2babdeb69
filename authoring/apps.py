from django.apps import AppConfig


class AuthoringConfig(AppConfig):
    """The pieces the writing kinds share (streaming, its script, the page frame); no tables."""

    name = "authoring"
    verbose_name = "Authoring"
    default_auto_field = "django.db.models.BigAutoField"
