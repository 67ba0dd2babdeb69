from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.decorators.csp import csp_override
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from core import health
from core.views import ThrottledLoginView
from labeling.accounts.views import RevokingLogoutView

# Swagger UI and ReDoc style their pages inline and ReDoc searches in a blob: worker; their
# scripts still come from this site only.
API_DOCS_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "worker-src": ["'self'", "blob:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
}

api_patterns: list[URLPattern | URLResolver] = [
    # The rater loop's first: every URL is tried in order, and these are most of the calls.
    path("", include("rankings.rating.api.urls")),
    # Before labeling's: GET on a project's prompts is the browser (POST, the import).
    path("", include("rankings.prompts.api_urls")),
    path("", include("labeling.api.urls")),
    path("", include("rankings.api.urls")),
    path("", include("llm.api.urls")),
    path("", include("exports.api.urls")),
    path("", include("authoring.redteam.api.urls")),
    path("", include("authoring.demonstrations.api.urls")),
    path("", include("authoring.arena.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "docs/",
        csp_override(API_DOCS_CSP)(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "redoc/",
        csp_override(API_DOCS_CSP)(
            SpectacularRedocView.as_view(url_name="api-schema", template_name="core/redoc.html")
        ),
        name="api-redoc",
    ),
]

handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", RevokingLogoutView.as_view(), name="logout"),
    path("account/", include("labeling.accounts.urls")),
    path("api/", include(api_patterns)),
    path("rate/", include("rankings.urls")),
    path("exports/", include("exports.urls")),
    path("demonstrations/", include("authoring.demonstrations.urls")),
    path("models/", include("llm.urls")),
    path("red-team/", include("authoring.redteam.urls")),
    path("", include("labeling.urls")),
]
