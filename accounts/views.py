"""The account page: a person's API tokens, a form to create one (shown once) and a revoke button per token."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import ApiTokenCreateForm


@never_cache  # the response that carries a new token must not be kept by the browser or a proxy
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """GET lists; POST creates a token and answers with the page itself, not a redirect, so the plain token
    travels only in this one response and is never put in the session or a message cookie."""
    form = ApiTokenCreateForm(request.POST or None)
    new_token = created = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                created, new_token = services.api_token_create(
                    owner=request.user, name=form.cleaned_data["name"], expires_at=form.expires_at())
                form = ApiTokenCreateForm()
            except services.ApiTokenInputError as exc:
                form.add_error(None, str(exc))
        if new_token is None:
            status = 400
    now = timezone.now()
    rows = [{"token": token, "status": token.status_at(now)} for token in selectors.api_tokens_for(owner=request.user)]
    context = {"form": form, "rows": rows, "new_token": new_token, "created": created}
    return render(request, "accounts/token_list.html", context, status=status)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = selectors.api_token_get_for(owner=request.user, token_id=pk)
    if token is None:
        raise Http404("no such token")  # someone else's token: a 404, so ids do not leak
    services.api_token_revoke(token=token)
    messages.success(request, f"Revoked {token}. Anything still using it now gets 401.")
    return redirect("accounts:tokens")
