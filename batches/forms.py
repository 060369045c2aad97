"""The batch form of the batch pages and the admin: a batch config as YAML, checked and planned on submit."""

from __future__ import annotations

from django import forms

from batches import planning, services

EXAMPLE = """\
experiment_name: "Seed study"
description: "How much does the summit's outcome depend on chance?"
base_scenario: "{slug}"
variations:
  - type: scenario_parameter
    parameter: seed
    values: [1, 101]
runs_per_variation: 3
max_parallel: 2
turns: 2
# budget_limit: 5.00         # USD for the whole batch
# cost_per_run_limit: 0.50   # USD: each run's credit limit
# provider: offline
"""


class BatchConfigForm(forms.Form):
    config = forms.CharField(
        label="Batch config (YAML)", max_length=100_000, widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false"}),
        help_text="V1's batch-config.yaml keys: experiment_name, description, base_scenario (a stored scenario's slug), "
                  "variations (actor_model, scenario_parameter), runs_per_variation, max_parallel, budget_limit, "
                  "cost_per_run_limit, output_dir; and seeds, provider, turns.",
    )

    def clean_config(self) -> str:
        text = self.cleaned_data["config"]
        try:
            config = planning.batch_config_parse(text=text)
            self.plan = planning.batch_plan(config=config, base=planning.batch_base_scenario(name=config.base_scenario))
        except (services.BatchInputError, services.BatchConflict, services.RunInputError) as exc:
            raise forms.ValidationError(str(exc)) from None
        return text
