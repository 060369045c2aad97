"""The one rule of what a reader of a run may know (`engine.visibility`)."""

from __future__ import annotations

from engine.event_types import EventType
from engine.state import ActorState, Communication, Decision, ScenarioState, ValidationResult
from engine.views.markdown import run_views
from engine.visibility import FULL, PUBLIC, Viewpoint

SECRET = "Upland's reserves run out in March"
WHISPER = "Midland and Lowland agree to drop Upland"


def _state() -> ScenarioState:
    actors = tuple(ActorState(short_name=s, name=s.title(), model="m", private_information=f"{s} secret")
                   for s in ("upland", "midland", "lowland"))
    actors = (ActorState(short_name="upland", name="Upland", model="m", private_information=SECRET), *actors[1:])
    return ScenarioState(
        run_id="r", scenario_name="s", actors=actors, turn=1,
        decisions=(Decision(turn=1, actor="upland", goals=["keep reserves"], short_term_priorities=["stall"],
                            reasoning="we are nearly broke", action="Call for a moratorium"),
                   Decision(turn=1, actor="midland", goals=["lead"], reasoning="Upland is weak", action="Propose a pact")),
        communications=(Communication(id="c1", turn=1, kind="public", sender="upland", recipients=(), content="We stand firm"),
                        Communication(id="c2", turn=1, kind="bilateral", sender="midland", recipients=("lowland",), content=WHISPER),
                        Communication(id="c3", turn=1, kind="bilateral", sender="upland", recipients=("midland",), content="Talk?")),
        validations=(ValidationResult(turn=1, check="goals", passed=False, severity="low", actor="midland", explanation="Upland is weak"),
                     ValidationResult(turn=1, check="world", passed=False, severity="low", explanation="fine")),
    )


def test_a_player_sees_their_actor_and_what_is_public_only():
    seen = Viewpoint.of(["upland"]).state(_state())
    assert [m.id for m in seen.communications] == ["c1", "c3"]
    upland, midland, _ = seen.actors
    assert upland.private_information == SECRET and midland.private_information == ""
    own, other = seen.decisions
    assert own.reasoning == "we are nearly broke" and own.goals == ("keep reserves",)
    assert (other.reasoning, other.goals, other.short_term_priorities, other.action) == ("", (), (), "Propose a pact")
    assert seen.validations == (), "the judge of every finding read every actor's secrets"


def test_the_public_view_keeps_no_actor_mind_and_the_full_view_everything():
    state = _state()
    public = PUBLIC.state(state)
    assert [m.kind for m in public.communications] == ["public"]
    assert all(a.private_information == "" for a in public.actors)
    assert all(d.reasoning == "" and d.action for d in public.decisions)
    assert FULL.state(state) is state


def test_files_drawn_from_a_view_never_hold_what_it_hides():
    files = "\n".join(view.render() for view in run_views(Viewpoint.of(["lowland"]).state(_state())))
    assert WHISPER in files  # lowland was told
    assert SECRET not in files and "we are nearly broke" not in files and "Talk?" not in files


def test_events_outside_a_view_say_nothing():
    player = Viewpoint.of(["upland"])
    whisper = {"kind": "bilateral", "sender": "midland", "recipients": ["lowland"], "content": WHISPER}
    assert player.event_data(EventType.COMMUNICATION_SENT, whisper) is None
    assert Viewpoint.of(["lowland"]).event_data(EventType.COMMUNICATION_SENT, whisper) is whisper

    decided = {"turn": 1, "actor": "midland", "reasoning": "Upland is weak", "long_term_goals": ["lead"],
               "short_term_priorities": [], "action": "Propose a pact"}
    assert player.event_data(EventType.ACTOR_DECISION_COMPLETED, decided) == {"turn": 1, "actor": "midland", "action": "Propose a pact"}
    own = {"actor": "upland", "reasoning": "x"}
    assert player.event_data(EventType.ACTOR_DECISION_COMPLETED, own) is own

    checked = {"turn": 1, "results": [{"check": "goals", "actor": "midland"}, {"check": "world", "actor": None}]}
    assert player.event_data(EventType.VALIDATION_COMPLETED, checked)["results"] == []
    assert player.event_data(EventType.VALIDATION_FAILED, {"check": "world", "actor": None}) is None
    assert FULL.event_data(EventType.VALIDATION_COMPLETED, checked) is checked
    assert player.event_data(EventType.TURN_COMPLETED, {"turn": 1}) == {"turn": 1}
