"""The offline provider: plays a scenario with no model at all, deterministically and at no cost.

It composes answers from the scenario itself (actors' names, goals and constraints, the open issues of
the world text) so a run reads like the scenario it is, and it returns exactly the JSON shapes a real
model must. The same (scenario, task, actor, turn, seed) always gives the same answer, so offline runs
are reproducible and make good fixtures. It is never mistaken for a model: every record says `offline`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from engine.llm.provider import LLMRequest, LLMResponse, estimate_tokens
from engine.scenario.schema import ActorConfig
from engine.scenario.folder import Scenario

PROVIDER_NAME = "offline"


def played_by(model: str, provider: str) -> str:
    """How a record's model is named to people: an offline answer names the model it stands in for, never as if
    that model had been called."""
    return f"offline (stands in for {model})" if provider == PROVIDER_NAME and model else model

_MARKUP = re.compile(r"[*_`#>\[\]]")
_HEADING = re.compile(r"^(#{1,3}) (.+)$", re.M)
_BULLET_ITEM = re.compile(r"^[-*]\s+(.+?)(?=^[-*]\s|^#|\Z)", re.M | re.S)
_BOLD_LABEL = re.compile(r"^\*\*(.+?):?\*\*")
_ACTION_BLOCK = re.compile(r"^### (.+?)\n(.*?)(?=^### |\Z)", re.M | re.S)
# A counted status line: "- **Endorsements:** 3 delegations have endorsed ..." (the count leads the text).
_STATUS_LINE = re.compile(r"^(\s*[-*]\s+(?:\*\*[^*\n]+\*\*\s*)?)(\d{1,3})(\s[^\n]*)$", re.M)
_SHRINKING = ("remain", "outstanding", "open", "bracket", "unresolved", "left")
# The section titles the phases write into prompts; a section runs until the next of these.
_PROMPT_SECTIONS = (
    "Summary of earlier turns", "Summary so far", "Turns to summarise", "Earlier turns", "Current world state", "World state before turn", "Actions taken in turn", "Public statements",
    "Outside events this turn", "Your previous actions", "Messages this turn", "Other actors", "A message addressed to you",
)

SUMMARY_LINES = 8  # turns an offline summary lists

COOPERATIVE = [
    "tables a compromise text on {topic}, offering {give} in return for {ask} from {other}",
    "joins {other} in a joint proposal on {topic} and invites the others to endorse it",
    "signals agreement in principle on {topic} if the final text keeps {ask}",
    "proposes a working group with {other} to close the remaining gaps on {topic}",
]
COMPETITIVE = [
    "lodges a formal objection to the current draft on {topic} and demands {ask}",
    "holds firm on {topic}, warning that without {ask} it cannot join the consensus",
    "floats its own language on {topic}, sidelining {other}'s proposal",
    "threatens to block the chapter on {topic} unless {other} concedes {ask}",
]
GIVES = ["a phased timeline", "a review clause after two years", "technical assistance", "a narrower scope", "shared funding"]
ASKS = ["binding language", "a clear reporting threshold", "independent verification", "a safe-harbour clause", "an opt-out for smaller parties"]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", _MARKUP.sub("", text)).strip()


def _sentence(text: str, limit: int = 220) -> str:
    first = re.split(r"(?<=[.!?])\s", _clean(text), maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 1].rsplit(" ", 1)[0] + "…"


def _lower_first(text: str) -> str:
    """Lower-case a leading capital for use mid-sentence, unless the phrase is a name ("International
    Network of ..."), an acronym ("AI ...") or a pronoun that stays capital."""
    words = re.sub(r"\([^)]*\)", "", text).split()
    if not words or words[0][:2].isupper() or words[0] == "I" or any(w[:1].isupper() for w in words[1:]):
        return text
    return text[:1].lower() + text[1:]


def _section(prompt: str, title_start: str) -> str:
    """The body of the prompt section whose title starts with `title_start`.

    World texts have `##` headings of their own, so a section ends at the next heading the phases
    write, not at any heading."""
    start = prompt.find(f"## {title_start}")
    if start < 0:
        return ""
    body_start = prompt.find("\n", start) + 1
    ends = [prompt.find(f"\n## {title}", body_start) for title in _PROMPT_SECTIONS]
    end = min((e for e in ends if e >= 0), default=len(prompt))
    return prompt[body_start:end]


def _first_prose(text: str) -> str:
    """The first sentence of the first paragraph that is not a heading or a list."""
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.strip() and not paragraph.lstrip().startswith(("#", "-", "*", "|", ">")):
            return _sentence(paragraph)
    return ""


def scenario_topics(world_text: str) -> list[str]:
    """The issues a scenario is about: bullet labels in a section on issues or the agenda (or any bullets)."""
    sections = re.split(r"^#{1,3} ", world_text, flags=re.M)
    preferred = [s for s in sections if re.match(r"[^\n]*(issue|agenda|question|topic|table)", s, re.I)]
    topics = []
    for section in preferred or sections:
        for item in _BULLET_ITEM.findall(section):
            label = _BOLD_LABEL.match(item.strip())
            text = _clean(label.group(1) if label else re.split(r"[:;,.]", item, maxsplit=1)[0])
            if 4 <= len(text) <= 80:
                topics.append(text.rstrip(":"))
    return topics


class OfflineProvider:
    """`complete()` never leaves the process; `max_cost()` is always 0."""

    name = PROVIDER_NAME

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.scenario = scenario
        topics = scenario_topics(scenario.config.initial_world_state) if scenario else []
        self.topics = topics[:16] or ["the draft agreement", "verification", "timelines", "funding"]

    def max_cost(self, request: LLMRequest) -> float:
        return 0.0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        purpose = request.purpose
        scenario_name = self.scenario.name if self.scenario else ""
        key = f"{scenario_name}|{purpose.task}|{purpose.actor}|{purpose.turn}|{request.seed}|{sorted(purpose.hints.items())}"
        rng = random.Random(hashlib.sha256(key.encode()).hexdigest())
        compose = {
            "decision": self._decision,
            "outreach": self._outreach,
            "reply": self._reply,
            "world_update": self._world_update,
            "metric": self._metric,
            "validation": self._validation,
            "summary": self._summary,
        }.get(purpose.task, self._plain)
        answer = compose(request, rng)
        text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        return LLMResponse(
            text=text,
            data=None if isinstance(answer, str) else answer,
            input_tokens=estimate_tokens(request.prompt_text),
            output_tokens=estimate_tokens(text),
            cost=0.0,
            model=request.model,
            provider=PROVIDER_NAME,
        )

    # ---- helpers -----------------------------------------------------------------------------------
    def _actor(self, short_name: str | None) -> ActorConfig | None:
        if self.scenario is None or short_name is None:
            return None
        return next((a for a in self.scenario.actors if a.short_name == short_name), None)

    def _others(self, short_name: str | None) -> list[ActorConfig]:
        return [a for a in (self.scenario.actors if self.scenario else []) if a.short_name != short_name]

    def _mood(self, turn: int, rng: random.Random) -> bool:
        """True for a cooperative move. Talks warm up as the turns go by, with some setbacks."""
        total = self.scenario.config.turns if self.scenario else 5
        return rng.random() < 0.35 + 0.45 * min(turn, total) / max(total, 1)

    def _move(self, actor: ActorConfig | None, turn: int, rng: random.Random) -> str:
        others = self._others(actor.short_name if actor else None)
        other = rng.choice(others).name if others else "the other delegations"
        template = rng.choice(COOPERATIVE if self._mood(turn, rng) else COMPETITIVE)
        return template.format(topic=_lower_first(rng.choice(self.topics)), give=rng.choice(GIVES), ask=rng.choice(ASKS), other=other)

    # ---- tasks -------------------------------------------------------------------------------------
    def _decision(self, request: LLMRequest, rng: random.Random) -> dict:
        purpose = request.purpose
        actor = self._actor(purpose.actor)
        name = actor.name if actor else (purpose.actor or "The actor")
        goals = list(actor.goals[:3]) if actor and actor.goals else ["Advance our core interests"]
        constraint = rng.choice(actor.constraints) if actor and actor.constraints else "it cannot overreach"
        topic = _lower_first(rng.choice(self.topics))
        counterpart = [o.name for o in self._others(purpose.actor) if f"**{o.name}**" in request.prompt_text]
        world = _section(request.prompt_text, "Current world state")
        reasoning = [
            f"The situation now: {_first_prose(world) or 'the talks are at an early stage'}",
            f"For {name}, {topic} is where the goal to {_lower_first(rng.choice(goals)).rstrip('.')} is most at stake.",
        ]
        if counterpart:
            reasoning.append(f"The messages from {', '.join(counterpart[:2])} show where a deal may be possible.")
        reasoning.append(f"Any move must respect one limit: {_lower_first(constraint).rstrip('.')}.")
        first, second = self._move(actor, purpose.turn, rng), self._move(actor, purpose.turn, rng)
        return {
            "long_term_goals": goals,
            "short_term_priorities": [
                f"Move {topic} forward this {self._turn_unit()}",
                f"Keep {rng.choice(self._others(purpose.actor)).name if self._others(purpose.actor) else 'the others'} engaged",
            ],
            "reasoning": " ".join(reasoning),
            "action": f"{name} {first}. It also {second}.",
        }

    def _turn_unit(self) -> str:
        duration = self.scenario.config.turn_duration if self.scenario else "turn"
        return duration.split()[-1] if duration else "turn"

    def _outreach(self, request: LLMRequest, rng: random.Random) -> dict:
        purpose = request.purpose
        actor = self._actor(purpose.actor)
        name = actor.name if actor else "We"
        settings = self.scenario.config.features.communications if self.scenario else None
        others = self._others(purpose.actor)
        conversations: list[dict] = []
        if settings and others:
            wanted = rng.randint(0, settings.max_per_turn)
            for _ in range(wanted):
                if settings.coalition and len(others) >= 2 and rng.random() < 0.35:
                    members = rng.sample(others, 2)
                    conversations.append({"kind": "coalition", "with": [m.short_name for m in members], "message": self._pitch(actor, members, rng)})
                elif settings.bilateral:
                    target = rng.choice(others)
                    conversations.append({"kind": "bilateral", "with": [target.short_name], "message": self._pitch(actor, [target], rng)})
        goal = _lower_first(rng.choice(actor.goals)).rstrip(".") if actor and actor.goals else "find common ground"
        statement = f"{name} is here to {goal}, and will judge the text on {_lower_first(rng.choice(self.topics))}." if rng.random() < 0.7 else ""
        return {"public_statement": statement, "conversations": conversations}

    def _pitch(self, actor: ActorConfig | None, members: list[ActorConfig], rng: random.Random) -> str:
        topic = _lower_first(rng.choice(self.topics))
        names = " and ".join(m.name for m in members)
        ask = rng.choice(ASKS)
        return f"To {names}: we could move together on {topic} if the text includes {ask}. Can you support that, and what do you need in return?"

    def _reply(self, request: LLMRequest, rng: random.Random) -> dict:
        sender = self._actor(str(request.purpose.hints.get("to")))
        sender_name = sender.name if sender else "your delegation"
        responder = self._actor(request.purpose.actor)
        if self._mood(request.purpose.turn, rng):
            text = f"We can work with {sender_name} on this, provided the final text includes {rng.choice(GIVES)}."
        else:
            limit = rng.choice(responder.constraints) if responder and responder.constraints else "our mandate is limited"
            text = f"We cannot accept that as it stands: {_lower_first(limit).rstrip('.')}. We would need {rng.choice(ASKS)} first."
        return {"response": text}

    def _world_update(self, request: LLMRequest, rng: random.Random) -> str:
        prompt = request.prompt_text
        turn = request.purpose.turn
        actions = _ACTION_BLOCK.findall(_section(prompt, f"Actions taken in turn {turn}"))
        cooperative = sum(any(word in body.lower() for word in ("compromise", "joint", "agreement", "working group")) for _, body in actions)
        warming = cooperative * 2 >= len(actions)
        lines = [
            f"By the end of {self._turn_unit()} {turn}, the talks are "
            + ("gaining momentum: more delegations see a deal within reach." if warming else "strained: positions have hardened and several chapters are in dispute."),
            "",
            "### Developments",
        ]
        for name, body in actions:
            name, body = name.strip(), _clean(body)
            if body.lower().startswith(name.lower()):
                body = body[len(name) :].strip()
            consequence = rng.choice(
                ["Others take note and adjust their positions.", "The move draws a cautious welcome.", "It provokes pushback in the corridors.", "Its effect will show in the next round."]
            )
            lines.append(f"- **{name}** {_sentence(body, 260)} {consequence}")
        events = re.findall(r"^- \*\*(.+?)\*\*: (.+)$", _section(prompt, "Outside events"), re.M)
        if events:
            lines += ["", "### Outside events"]
            lines += [f"- {_sentence(text, 300)}" for _, text in events]
        status = self._carry_status(_section(prompt, f"World state before turn {turn}"), warming, rng)
        if status:
            lines += ["", "### Status", *status]
        remaining = rng.sample(self.topics, k=min(3, len(self.topics)))
        lines += ["", "### Open questions", *[f"- {topic}" for topic in remaining]]
        return "\n".join(lines)

    @staticmethod
    def _carry_status(previous: str, warming: bool, rng: random.Random) -> list[str]:
        """Carry forward the previous world's counted status lines, moving each number with the mood."""
        carried = []
        for prefix, number, rest in _STATUS_LINE.findall(previous)[:6]:
            line = f"{prefix}{number}{rest}"
            shrinks = any(word in line.lower() for word in _SHRINKING)
            step = rng.randint(0, 2) if warming else rng.randint(0, 1)
            value = int(number) + (step if warming != shrinks else -step)
            carried.append(f"{prefix}{max(0, value)}{rest}")
        return carried

    def _metric(self, request: LLMRequest, rng: random.Random) -> str:
        low, high = request.purpose.hints.get("range", [0, 10])
        total = self.scenario.config.turns if self.scenario else 5
        progress = min(request.purpose.turn, total) / max(total, 1)
        value = low + (high - low) * (0.3 + 0.4 * progress) + rng.uniform(-0.1, 0.1) * (high - low)
        return f"{min(max(value, low), high):.1f}"

    def _validation(self, request: LLMRequest, rng: random.Random) -> dict:
        if rng.random() < 0.85:
            return {"passed": True, "severity": "low", "issues": [], "explanation": "Consistent with the actor's profile and the situation."}
        return {
            "passed": False,
            "severity": "low",
            "issues": ["The stated reasoning leans on one goal and does not address the others."],
            "explanation": "A minor inconsistency; the run can continue.",
        }

    def _summary(self, request: LLMRequest, rng: random.Random) -> str:
        """A line per turn (how the talks stood after it), the earlier lines carried from the summary so far;
        only the latest SUMMARY_LINES are kept, so the summary stays short however long the run."""
        prompt = request.prompt_text
        lines = [line for line in _section(prompt, "Summary so far").splitlines() if line.startswith("- Turn ")]
        records = re.split(r"^### Turn (\d+)\n", _section(prompt, "Turns to summarise"), flags=re.M)[1:]
        for turn, record in zip(records[::2], records[1::2]):
            world = record.split(f"#### World state after turn {turn}", 1)[-1] if "#### World state" in record else ""
            lines.append(f"- Turn {turn}: {_first_prose(world) or 'The talks went on without a decisive move.'}")
        last = request.purpose.hints.get("last_turn", request.purpose.turn)
        kept = lines[-SUMMARY_LINES:]
        opening = f"Turns 1–{last} in brief" + (f" (the last {len(kept)} shown)." if len(kept) < len(lines) else ".")
        return "\n".join([opening, *kept])

    def _plain(self, request: LLMRequest, rng: random.Random) -> str:
        return _sentence(request.prompt_text) or "No comment."
