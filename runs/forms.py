"""The start form: what a person may choose for a new run (the same parameters as `run_scenario`)."""

from __future__ import annotations

from django import forms

from engine.llm.routing import PROVIDER_CHOICES
from scenarios.models import Scenario


class RunStartForm(forms.Form):
    scenario = forms.ModelChoiceField(queryset=Scenario.objects.order_by("name"))
    turns = forms.IntegerField(required=False, min_value=1, max_value=1000, help_text="Empty: the scenario's.")
    credit_limit = forms.FloatField(required=False, min_value=0.000001, label="Credit limit (USD)",
                                    help_text="Empty: the scenario's default. The run halts before a call could pass it.")
    model = forms.CharField(required=False, max_length=200, help_text="Play every seat, the world and the judge with this model.")
    provider = forms.ChoiceField(required=False, choices=[("", "by model")] + [(p, p) for p in PROVIDER_CHOICES])
    seed = forms.IntegerField(required=False, help_text="Empty: the scenario's.")
    use_cache = forms.BooleanField(required=False, initial=True, label="Answer repeated prompts from the cache")

    def run_parameters(self) -> dict:
        data = self.cleaned_data
        return {
            "turns": data["turns"], "credit_limit": data["credit_limit"], "seed": data["seed"],
            "model": data["model"], "provider": data["provider"], "use_cache": data["use_cache"],
        }


class ScenarioRunStartForm(RunStartForm):
    """The start form on a scenario's page, where the scenario is the page's own."""

    scenario = None
