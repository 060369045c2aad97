"""The forms V1 and the original project wrote scenario.yaml in, read as the engine's: other names for the same
setting (which must agree when both are given), the run's length as `scenario_length`, `parameters` or a
condition, and the communication switches V1 kept at the top level. Each problem is a `v1_problem`, which the
loader places on the line of the key that holds it."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel
from pydantic_core import PydanticCustomError

from engine.scenario.conditions import ConditionError, parse_condition

# ---- V1's other names for the same settings ----------------------------------------------------------------
V1_FORM_ERROR = "v1_form"


def v1_problem(key: tuple[Any, ...], message: str, *, other: tuple[Any, ...] | None = None,
               fix: str | None = None) -> PydanticCustomError:
    """A problem with a V1 form, raised by a model's before-validator.

    `v1_key` is where it sits, relative to the model (the loader turns it into a line); `v1_other` is the key it
    disagrees with, if any; `v1_fix` the suggestion."""
    context: dict[str, Any] = {"v1_key": list(key)}
    if other is not None:
        context["v1_other"] = list(other)
    if fix:
        context["v1_fix"] = fix
    return PydanticCustomError(V1_FORM_ERROR, message, context)


def shown(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "nothing"}[value]
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def one_value_per_setting(model: type[BaseModel], data: dict[str, Any],
                           read: dict[str, Any] | None = None) -> dict[str, Any]:
    """A field with V1 names (AliasChoices) given under two of them must say the same thing under both.

    `read` maps a name to its value as the field's (None: this value is not that setting, leave it alone).
    The repeats are dropped, so only the first name given is kept (and exported under the field's name)."""
    read = read or {}
    for field_name, info in model.model_fields.items():
        alias = info.validation_alias
        if not isinstance(alias, AliasChoices):
            continue
        present = []
        for choice in alias.choices:
            if isinstance(choice, str) and choice in data:
                value = read[choice](data[choice]) if choice in read else data[choice]
                if value is not None or choice not in read:
                    present.append((choice, value))
        if len(present) < 2:
            continue
        first, first_value = present[0]
        for key, value in present[1:]:
            if value != first_value:
                raise v1_problem(
                    (key,),
                    f"'{key}' ({shown(value)}) and '{first}' ({shown(first_value)}) both set {field_name}, "
                    "to different values",
                    other=(first,),
                    fix=f"keep one of '{first}' and '{key}'",
                )
        data = {key: value for key, value in data.items() if key not in {name for name, _ in present[1:]}}
    return data


TURN_KEYS = ("turns", "num_turns", "max_turns", "scenario_length")


def condition_length(data: dict[str, Any]) -> dict[str, Any]:
    """`scenario_length: {type: condition, condition: …, max_turns: N}` as `end_condition` and `turns`. The cap is
    `max_turns` (or `turns`) there, else the scenario's own turns, else a top-level `or turns >= N` of the
    condition; a condition with none of them could run for ever, and is refused. A condition that is not a
    comparison of metrics next to the scenario's own turns is V1's prose: kept as written, the turns played."""
    length = data.get("scenario_length")
    if not isinstance(length, dict) or not (length.get("type") == "condition" or "condition" in length):
        return data
    text = length.get("condition")
    if not isinstance(text, str):
        raise v1_problem(("scenario_length", "condition") if "condition" in length else ("scenario_length",),
                         "a condition length needs `condition:`, e.g. `cooperation_level >= 8 or turns >= 20`")
    try:
        condition = parse_condition(text)
    except ConditionError as exc:
        if any(key in data for key in TURN_KEYS if key != "scenario_length"):
            return data  # V1 wrote a description of the end next to its turns: kept as written, the turns played
        raise v1_problem(("scenario_length", "condition"), str(exc),
                         fix="compare metrics with numbers, e.g. `cooperation_level >= 8 or turns >= 20`") from None
    data = {key: value for key, value in data.items() if key != "scenario_length"}
    data["end_condition"] = text
    cap = length.get("max_turns", length.get("turns"))
    if not any(key in data for key in TURN_KEYS):
        cap = cap if cap is not None else condition.turn_cap
        if cap is None:
            raise v1_problem(("scenario_length",), "a condition length needs a cap on the turns it may play",
                             fix="add `max_turns: N` under scenario_length, or `or turns >= N` to the condition")
        data["turns"] = cap
    return data


def from_parameters(data: dict[str, Any]) -> dict[str, Any]:
    """An older form kept the run's length under `parameters: {max_turns, turn_duration}`: read as `turns` and
    `turn_duration` unless those are given (then they must agree). `parameters` itself stays, as written."""
    parameters = data.get("parameters")
    if not isinstance(parameters, dict):
        return data
    for inner, outer, others in (("max_turns", "max_turns", TURN_KEYS), ("turn_duration", "turn_duration", ("turn_duration",))):
        if inner not in parameters:
            continue
        given = [key for key in others if key in data]
        if not given:
            data[outer] = parameters[inner]
        elif given[0] != "scenario_length" and data[given[0]] != parameters[inner]:
            raise v1_problem(("parameters", inner), f"parameters.{inner} ({shown(parameters[inner])}) and "
                             f"'{given[0]}' ({shown(data[given[0]])}) set different values", other=(given[0],),
                             fix="keep one of them")
    return data


# V1's scenario.yaml switched communication channels with top-level keys; the engine keeps them under
# features.communications. Each V1 key and the engine key it becomes:
V1_COMMUNICATION_SWITCHES: dict[str, str] = {
    "enable_bilateral_communication": "bilateral",
    "enable_coalition_formation": "coalition",
    "enable_public_statements": "public",
    "max_communications_per_turn": "max_per_turn",
}
CHANNELS = ("bilateral", "coalition", "public")
# Where a V1 key's value ends up, for naming the V1 key's line when that value is wrong.
V1_MOVED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("features", "communications", setting): (key,) for key, setting in V1_COMMUNICATION_SWITCHES.items()
}


def length_in_turns(value: Any) -> Any:
    """V1's `scenario_length: {type: fixed, turns: N}` (or a bare number) as turns; None for a condition."""
    if isinstance(value, dict):
        return value.get("turns")
    return value


def v1_communications(data: dict[str, Any]) -> dict[str, Any]:
    """Move V1's communication switches into features.communications (where the engine reads them)."""
    given = [key for key in (*V1_COMMUNICATION_SWITCHES, "communication_types") if key in data]
    if not given:
        return data
    features = data.get("features", {})
    communications = features.get("communications", {}) if isinstance(features, dict) else None
    if isinstance(communications, bool):
        communications = {"enabled": communications}
    if not isinstance(communications, dict):
        return data  # the schema reports features / communications themselves; nothing sensible to merge into
    communications = dict(communications)
    engine_path = ("features", "communications")
    settled: dict[str, tuple[tuple[Any, ...], Any]] = {
        setting: ((*engine_path, setting), communications[setting])
        for setting in (*CHANNELS, "max_per_turn")
        if setting in communications
    }

    def offer(setting: str, source: tuple[Any, ...], value: Any) -> None:
        if setting in settled and settled[setting][1] != value:
            other, other_value = settled[setting]
            shown_other = ".".join(str(part) for part in other)
            raise v1_problem(source, f"'{source[0]}' makes {setting} {shown(value)} but '{shown_other}' makes it "
                             f"{shown(other_value)}", other=other, fix=f"keep one of '{source[0]}' and "
                             f"'{shown_other}', or make them agree")
        settled.setdefault(setting, (source, value))

    for key, setting in V1_COMMUNICATION_SWITCHES.items():
        if key in data:
            offer(setting, (key,), data[key])
    if "communication_types" in data:
        kinds = data["communication_types"]
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list):
            raise v1_problem(("communication_types",), f"expected a list of 'public', 'bilateral' or 'coalition', "
                             f"got {shown(kinds)}")
        for index, kind in enumerate(kinds):
            if kind not in CHANNELS:
                raise v1_problem(("communication_types", index), f"expected 'public', 'bilateral' or 'coalition', "
                                 f"got {shown(kind)}")
        for setting in CHANNELS:
            offer(setting, ("communication_types",), setting in kinds)
    for setting, (_, value) in settled.items():
        communications[setting] = value
    if "enabled" not in communications and not any(communications.get(channel, True) for channel in CHANNELS):
        communications["enabled"] = False  # every channel off: no outreach calls at all
    moved = {key: value for key, value in data.items() if key not in given}
    moved["features"] = {**(features or {}), "communications": communications}
    return moved
