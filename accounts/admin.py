"""Admin for API tokens: who holds which, when used, revoke; creating one for a user shows it once."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts import services
from accounts.forms import AdminApiTokenCreateForm
from accounts.models import ApiToken, Quota


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("revoked", "revoked"), ("expired", "expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    # The hash is never shown: it is not the token, but there is nothing a person could do with it.
    list_display = ("name", "owner", "display_prefix", "created_at", "last_used_at", "expires_at", "revoked_at", "status")
    list_filter = (StatusFilter, "created_at")
    search_fields = ("name", "prefix", "owner__username", "owner__email")
    list_select_related = ("owner",)
    fields = ("owner", "name", "display_prefix", "created_at", "last_used_at", "expires_at", "revoked_at", "status")
    readonly_fields = fields
    actions = ["revoke_tokens"]

    @admin.display(description="token")
    def display_prefix(self, token: ApiToken) -> str:
        return token.display_prefix

    @admin.display(description="status")
    def status(self, token: ApiToken) -> str:
        return token.status

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a token is issued, used and revoked; never edited

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("accounts.change_apitoken")

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_tokens(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            services.api_token_revoke(token=token)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)

    def add_view(self, request, form_url="", extra_context=None):
        """Not a model form: pick a user, name the token; the plain token is on the answer page, once.

        It is rendered into that response rather than put in a success message, because messages live in a
        cookie or the session until read, and the token must not be stored anywhere.
        """
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AdminApiTokenCreateForm(request.POST or None, creator=request.user)
        token = raw = None
        if request.method == "POST" and form.is_valid():
            try:
                token, raw = services.api_token_create(
                    owner=form.cleaned_data["owner"], name=form.cleaned_data["name"], expires_at=form.expires_at())
            except services.ApiTokenInputError as exc:
                form.add_error(None, str(exc))
        context = {
            **self.admin_site.each_context(request), "title": "Create an API token" if raw is None else "API token created",
            "form": form, "token": token, "raw": raw, "opts": self.model._meta,
            "has_view_permission": self.has_view_permission(request),
        }
        # AdminSite.admin_view wraps this in never_cache, so the answer carrying the token is not kept.
        return TemplateResponse(request, "admin/accounts/apitoken/create.html", context)


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ("__str__", "max_credit_limit", "max_runs_under_way", "max_batch_runs", "max_batch_budget",
                    "max_batch_parallel", "priority")
    list_select_related = ("user", "group")
    search_fields = ("user__username", "group__name")
    autocomplete_fields = ("user", "group")
    fieldsets = (
        ("Whose", {"fields": ("user", "group"), "description": "One user, or every member of one group. A user's own "
                   "quota wins over their groups'; of several groups, the most generous limit applies. Staff are "
                   "unlimited unless a quota names them."}),
        ("Limits (empty: no limit)", {"fields": ("max_credit_limit", "max_runs_under_way", "max_batch_runs",
                                                 "max_batch_budget", "max_batch_parallel")}),
        ("Queue", {"fields": ("priority",)}),
    )
