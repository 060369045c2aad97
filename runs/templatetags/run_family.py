"""The run page's family tree and branch form: `{% run_family_of run as family %}` in `runs/_family_tree.html`."""

from __future__ import annotations

from django import template

from runs import selectors
from runs.forms import RunBranchForm
from runs.reading import readable_family, readable_intervention, reader_of

register = template.Library()


@register.simple_tag(takes_context=True)
def run_family_of(context, run) -> dict:
    """The runs of `run`'s family the viewer may see, and a branch form when there is a completed turn to
    branch from (a run whose frozen scenario no longer loads gets none: branching it would be refused too)."""
    # A page has its request; a status panel, rendered without one, names its reader as `user`.
    user = getattr(context.get("request"), "user", None) or context.get("user")
    reader = context.get("reader") or reader_of(run, user)
    form = None
    if run.turn >= 1 and reader.steers:  # the form holds every actor's brief: it is the steerers'
        try:
            form = RunBranchForm(run=run, auto_id="branch-%s")
        except (ValueError, KeyError):
            form = None
    members = readable_family(reader.viewpoint, selectors.run_family(run=run, user=user))
    return {"members": members, "form": form, "parent_shown": any(member.run.pk == run.parent_id for member in members),
            "changes": selectors.intervention_changes(readable_intervention(reader.viewpoint, run.intervention))}
