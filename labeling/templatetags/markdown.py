"""`{{ text|markdown }}`: sanitized markdown rendering for templates."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from labeling.rendering import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    # Safe only because render_markdown sanitizes with an allow-list after rendering.
    return mark_safe(render_markdown(text))
