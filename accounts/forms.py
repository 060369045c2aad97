"""Forms for API tokens: the account page's create form and the admin's create-for-a-user form."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, so you can tell your tokens apart.")
    expires_in_days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Expires in (days)",
                                         help_text="Empty: never expires (you can still revoke it).")

    def expires_at(self) -> dt.datetime | None:
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + dt.timedelta(days=days) if days else None


class AdminApiTokenCreateForm(ApiTokenCreateForm):
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.none())

    field_order = ["owner", "name", "expires_in_days"]

    def __init__(self, *args, creator, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A token acts with its owner's rights, and the creator sees it: only a superuser may make tokens for
        # others; anyone else only for themselves, or "add API token" would be a way to become someone else.
        users = get_user_model().objects.filter(is_active=True).order_by("username")
        self.fields["owner"].queryset = users if creator.is_superuser else users.filter(pk=creator.pk)
