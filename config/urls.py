from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from config import openapi  # noqa: F401 - registers the schema extensions before the schema is built
from config.api_root import ShopAPIRootView
from config.metrics import metrics_view
from config.signin import ObtainTokenView
from config.views import healthz, readyz
from inventory.api.views import ProductViewSet
from notifications.api.views import NotificationViewSet
from orders.api.views import OrderViewSet

router = DefaultRouter()
router.APIRootView = ShopAPIRootView
router.register("products", ProductViewSet, basename="product")
router.register("orders", OrderViewSet, basename="order")
router.register("notifications", NotificationViewSet, basename="notification")

urlpatterns = [
    path("", RedirectView.as_view(url="/api/", permanent=False)),
    # Browsers ask every site for /favicon.ico; the admin's and the browsable API's pages name none.
    path("favicon.ico", RedirectView.as_view(url=static("dashboard/favicon.svg"), permanent=True)),
    path("api/", include(router.urls)),
    path("api/auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script from a URL, not inline: no 'unsafe-inline'
    # in the Content-Security-Policy.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("admin/", admin.site.urls),
    path("ops/", include("dashboard.urls")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]

handler400 = "config.errorpages.bad_request"
handler403 = "config.errorpages.permission_denied"
handler404 = "config.errorpages.page_not_found"
handler500 = "config.errorpages.server_error"
