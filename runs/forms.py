"""The start form: what a person may choose for a new run (the same parameters as `run_scenario`)."""

from __future__ import annotations

from django import forms

from engine.llm.routing import PROVIDER_CHOICES
from engine.scenario.folder import Scenario as EngineScenario
from runs.branching import ActorChange, Intervention
from runs.errors import RunInputError
from runs.listing import RunFilters
from runs.models import RunRole
from runs.roles import grant_to
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
    human_seats = forms.CharField(required=False, max_length=500, label="Human seats",
                                  help_text="Short names of the actors you (or colleagues) play, separated by commas.")
    human_timeout_minutes = forms.FloatField(required=False, min_value=0.01, label="Seat timeout (minutes)",
                                             help_text="Empty: wait for the person. Otherwise the model takes a waiting seat after this long.")

    def run_parameters(self) -> dict:
        data = self.cleaned_data
        return {
            "turns": data["turns"], "credit_limit": data["credit_limit"], "seed": data["seed"],
            "model": data["model"], "provider": data["provider"], "use_cache": data["use_cache"],
            "human_seats": [seat.strip() for seat in (data["human_seats"] or "").split(",") if seat.strip()],
            "human_timeout_minutes": data["human_timeout_minutes"],
        }


class ScenarioRunStartForm(RunStartForm):
    """The start form on a scenario's page, where the scenario is the page's own: with who takes part besides
    whoever starts it, each named as a username or `group:<name>`."""

    scenario = None
    facilitators = forms.CharField(required=False, max_length=500, help_text="Who steers the run with you: names separated by commas.")
    observers = forms.CharField(required=False, max_length=500, help_text="Who follows the run read-only: names separated by commas.")
    observer_view = forms.ChoiceField(required=False, label="Observers see", choices=[
        ("", "as the scenario says"), ("full", "everything"), ("public", "only what is public")])

    def __init__(self, data=None, *, actors: list[tuple[str, str]] = (), **kwargs) -> None:
        super().__init__(data, **kwargs)
        self.seat_fields = []
        for short_name, name in actors:
            key = f"player_{short_name}"
            self.fields[key] = forms.CharField(required=False, max_length=150, label=f"{name} played by",
                                               help_text="A username or group:<name>; empty: the model (or you, above).")
            self.seat_fields.append((key, short_name))

    def clean(self):
        data = super().clean()
        grants = []
        for field, role, view in (("facilitators", RunRole.Role.FACILITATOR, None),
                                  ("observers", RunRole.Role.OBSERVER, data.get("observer_view") or None)):
            for name in filter(None, (n.strip() for n in (data.get(field) or "").split(","))):
                try:
                    grants.append(grant_to(name, role, view=view))
                except RunInputError as exc:
                    self.add_error(field, str(exc))
        players: dict[str, list[str]] = {}
        for field, short_name in self.seat_fields:
            if name := (data.get(field) or "").strip():
                players.setdefault(name, []).append(short_name)
        for name, seats in players.items():
            try:
                grants.append(grant_to(name, RunRole.Role.PLAYER, seats=seats))
            except RunInputError as exc:
                for field, short_name in self.seat_fields:
                    if short_name in seats:
                        self.add_error(field, str(exc))
        data["roles"] = grants
        return data

    def run_parameters(self) -> dict:
        return {**super().run_parameters(), "roles": self.cleaned_data["roles"]}


# ---- branching: the "Branch from turn N" form of the run page and the admin ---------------------------------
class RunBranchForm(forms.Form):
    """A branch of `run` at a completed turn. Each actor's fields start at the run's values; only what is
    changed becomes the intervention (`runs.branching.Intervention`)."""

    at_turn = forms.TypedChoiceField(coerce=int, label="Branch from turn", help_text="The branch shares every turn up to this one.")
    end_turn = forms.IntegerField(required=False, min_value=2, max_value=1000, help_text="Empty: the run's.")
    credit_limit = forms.FloatField(required=False, min_value=0.000001, label="Credit limit (USD)", help_text="Empty: the run's.")
    seed = forms.IntegerField(required=False, min_value=-(2**63), max_value=2**63 - 1, help_text="Empty: the run's.")
    world_state = forms.CharField(required=False, max_length=200_000, widget=forms.Textarea(attrs={"rows": 5}), label="World text at the branch point",
                                  help_text="Empty: unchanged. Replaces the world as it stood after that turn.")
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why this branch.")
    start = forms.BooleanField(required=False, initial=True, label="Start it now")

    ACTOR_FIELDS = ("model", "control", "system_prompt", "goals")

    def __init__(self, data=None, *, run, **kwargs) -> None:
        super().__init__(data, **kwargs)
        self.run = run
        self.fields["at_turn"].choices = [(n, f"turn {n}") for n in range(run.turn, 0, -1)]
        config = EngineScenario.model_validate(run.snapshot)
        self.seats: dict[str, dict] = {}
        for seat in run.actors:
            name = seat["short_name"]
            actor = config.actor(name)
            self.seats[name] = {"model": seat["model"], "control": seat.get("control", "ai"),
                                "system_prompt": actor.system_prompt.strip(), "goals": "\n".join(actor.goals)}
            self.fields[f"{name}-model"] = forms.CharField(max_length=200, label="Model", initial=seat["model"])
            self.fields[f"{name}-control"] = forms.ChoiceField(choices=[("ai", "AI"), ("human", "human")], label="Seat",
                                                               initial=seat.get("control", "ai"))
            self.fields[f"{name}-system_prompt"] = forms.CharField(
                max_length=50_000,
                required=False, label="System prompt", widget=forms.Textarea(attrs={"rows": 6}),
                initial=self.seats[name]["system_prompt"])
            self.fields[f"{name}-goals"] = forms.CharField(
                max_length=50 * 2000,
                required=False, label="Goals (one a line)", widget=forms.Textarea(attrs={"rows": 4}),
                initial=self.seats[name]["goals"])

    def actor_fields(self) -> list[tuple[dict, list]]:
        """(the seat, its bound fields) per actor, for templates."""
        return [(seat, [self[f"{seat['short_name']}-{key}"] for key in self.ACTOR_FIELDS]) for seat in self.run.actors]

    def intervention(self) -> Intervention:
        data = self.cleaned_data
        actors = {}
        for name, was in self.seats.items():
            change = {}
            for key in self.ACTOR_FIELDS:
                value = data[f"{name}-{key}"].replace("\r\n", "\n").strip()  # browsers send CRLF
                if value != was[key]:
                    change[key] = value
            if "goals" in change:
                change["goals"] = tuple(line.strip() for line in change["goals"].splitlines() if line.strip())
            if change:
                actors[name] = ActorChange(**change)
        world = data["world_state"].replace("\r\n", "\n").strip()
        return Intervention(actors=actors, credit_limit=data["credit_limit"], seed=data["seed"], world_state=world or None,
                            end_turn=data["end_turn"], note=data["note"].strip())


# ---- a person's decision on a seat's page (the same limits as the API's SeatDecisionIn) -------------------------
class SeatDecisionForm(forms.Form):
    """Goals and priorities one a line; one reply field per proposal awaiting the seat's answer (left empty,
    the proposal stays unanswered). Django's fields refuse control characters (NUL) and the lengths cap what a
    page can store."""

    long_term_goals = forms.CharField(max_length=8 * 2000)
    short_term_priorities = forms.CharField(max_length=8 * 2000)
    reasoning = forms.CharField(max_length=20000)
    action = forms.CharField(max_length=20000)

    def __init__(self, data=None, *, proposals=(), **kwargs) -> None:
        super().__init__(data, **kwargs)
        for proposal in proposals:
            self.fields[f"reply-{proposal.id}"] = forms.CharField(max_length=20000, label="Your reply", required=False)

    def decision(self) -> dict:
        data = self.cleaned_data
        replies = {name.removeprefix("reply-"): value for name, value in data.items() if name.startswith("reply-")}
        return {key: data[key] for key in ("long_term_goals", "short_term_priorities", "reasoning", "action")} | {"replies": replies}


class CallFilterForm(forms.Form):
    """The calls page's filters (GET): each narrows the run's calls; an empty one does not."""

    TASKS = ("decision", "outreach", "reply", "world_update", "metric", "validation", "summary")
    OUTCOMES = ("used", "re-asked", "unusable")

    turn = forms.IntegerField(required=False, min_value=0, max_value=100_000)
    task = forms.ChoiceField(required=False, choices=[("", "any task")] + [(t, t.replace("_", " ")) for t in TASKS])
    actor = forms.ChoiceField(required=False)
    subject = forms.CharField(required=False, max_length=200, label="Metric or check")
    outcome = forms.ChoiceField(required=False, choices=[("", "any outcome")] + [(o, o) for o in OUTCOMES])

    def __init__(self, *args, actors: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["actor"].choices = [("", "any actor"), ("world", "the world")] + sorted(actors.items(), key=lambda a: a[1])

    def filters(self) -> dict[str, object]:
        """The filters to apply: the valid, non-empty ones (after `is_valid()`, whatever it said)."""
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}


class RunTableForm(forms.Form):
    """The run table's filters and sort (GET); a filter it cannot read is said on the page, not applied."""

    STATUSES = ("queued", "running", "waiting_for_human", "paused", "halted", "completed", "failed", "cancelled", "crashed")

    scenario = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "any status")] + [(s, s.replace("_", " ")) for s in STATUSES])
    tag = forms.ChoiceField(required=False)
    model = forms.CharField(required=False, max_length=200, label="Model of a seat")
    batch = forms.IntegerField(required=False, min_value=1, max_value=2**62, label="Batch #")
    family = forms.IntegerField(required=False, min_value=1, max_value=2**62, label="Family of run #")
    owner = forms.CharField(required=False, max_length=150)
    sort = forms.ChoiceField(required=False, choices=[("newest", "newest first"), ("oldest", "oldest first"),
                                                      ("cost", "dearest first"), ("scenario", "by scenario"),
                                                      ("status", "by status")])

    def __init__(self, data=None, *, scenarios: list[tuple[str, str]], tags: list[str], owners: bool, **kwargs) -> None:
        super().__init__(data, **kwargs)
        self.fields["scenario"].choices = [("", "any scenario"), *scenarios]
        self.fields["tag"].choices = [("", "any tag")] + [(tag, tag) for tag in tags]
        if not owners:
            del self.fields["owner"]

    def filters(self):
        """The filters to apply (after `is_valid()`): the ones it could read."""
        data = {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}
        return RunFilters(**data)


class RunNotesForm(forms.Form):
    tags = forms.CharField(required=False, max_length=20 * 66, help_text="comma-separated, e.g. baseline, pilot-2")
    notes = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 3}))
