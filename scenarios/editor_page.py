"""What the editor page shows for a folder's files: the form (or the YAML view) with each problem and warning at
its field, item, or file and line; the cost estimate; and, when asked, what each model reads on turn 1."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from scenarios.editing import Check, Edit, Placed, place
from scenarios.editor_form import Section, all_fields, all_items, form_sections
from scenarios.editor_yaml import Folder, YamlFileError

# The model picker offers the price data's models of these vendors (the whole list is 1,700 names); any other
# name may still be typed.
PICKER_VENDORS = ("openai", "anthropic", "google", "meta-llama", "mistralai", "deepseek", "qwen", "x-ai", "cohere",
                  "amazon", "microsoft", "nvidia")


@lru_cache(maxsize=1)
def picker_models() -> tuple[str, ...]:
    from engine.llm.price_index import priced_models

    return tuple(model for model in priced_models() if model.split("/", 1)[0] in PICKER_VENDORS)


@dataclass
class YamlFile:
    path: str
    text: str
    placed: list[Placed] = field(default_factory=list)

    @property
    def remove_value(self) -> str:
        return json.dumps({"op": "remove", "file": self.path})

    @property
    def rows(self) -> int:
        return max(6, min(40, self.text.count("\n") + 2))


@dataclass
class EditorPage:
    mode: str
    files: dict[str, str]
    sections: list[Section] | None
    yaml_files: list[YamlFile]
    placed: list[Placed]
    unplaced: list[Placed]  # problems no field, item or file shows
    estimate: Any = None  # engine.estimate.CostEstimate
    previews: list | None = None
    note: str = ""
    version: int | None = None  # the version the page edits (a save from an older one is refused)
    fresh: bool = False  # a blank new scenario, not checked yet

    @property
    def base(self) -> str:
        return json.dumps(self.files)

    @property
    def problem_count(self) -> int:
        return sum(1 for each in self.placed if each.level == "problem")

    @property
    def warning_count(self) -> int:
        return sum(1 for each in self.placed if each.level == "warning")

    @property
    def models(self) -> tuple[str, ...]:
        return picker_models()

    def as_json(self) -> dict[str, Any]:
        estimate = None
        if self.estimate is not None:
            estimate = {"low": round(self.estimate.cost.low, 4), "high": round(self.estimate.cost.high, 4),
                        "calls": self.estimate.calls, "turns": self.estimate.turns}
        return {"problems": [vars(each) for each in self.placed if each.level == "problem"],
                "warnings": [vars(each) for each in self.placed if each.level == "warning"],
                "estimate": estimate}


def _estimate(config) -> Any:
    from engine.estimate import estimate_run_cost
    from engine.llm.pricing import ListPrices

    return estimate_run_cost(config, ListPrices())


def editor_page(edit: Edit, check: Check, *, preview: bool = False) -> EditorPage:
    """The page for these files in the view the edit asks for. The form cannot show a file whose YAML does not
    parse: the YAML view is shown then, with the problem at its line."""
    mode, note, sections = edit.mode, "", None
    if mode == "form":
        try:
            sections = form_sections(Folder(edit.shown if edit.shown is not None else edit.files))
        except YamlFileError as exc:
            mode, note = "yaml", f"The form cannot show {exc.file} until its YAML reads: correct it here first."
    placed = place(check.problems + edit.problems, check.warnings, sections)
    yaml_files = [YamlFile(path, text) for path, text in edit.files.items()]
    unplaced: list[Placed] = []
    if sections is not None:
        fields = {each.name: each for each in all_fields(sections)}
        items = {each.id: each for each in all_items(sections)}
        by_key = {each.key: each for each in sections}
        for each in placed:
            target = fields.get(each.field) or items.get(each.item) or by_key.get(each.section)
            if target is None:
                unplaced.append(each)
            else:
                (target.problems if each.level == "problem" else target.warnings).append(each.text)
    else:
        by_path = {each.path: each for each in yaml_files}
        for each in placed:
            if each.file in by_path:
                by_path[each.file].placed.append(each)
            else:
                unplaced.append(each)
    previews = None
    if preview and check.config is not None:
        from scenarios.selectors import scenario_turn_one

        previews = scenario_turn_one(config=check.config)
    return EditorPage(mode=mode, files=edit.files, sections=sections, yaml_files=yaml_files, placed=placed,
                      unplaced=unplaced, estimate=_estimate(check.config) if check.config is not None else None,
                      previews=previews, note=note, version=edit.version,
                      fresh=edit.step == "open" and check.config is None and not check.problems)
