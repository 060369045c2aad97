"""End conditions: `scenario_length: {type: condition, condition: "cooperation_level >= 8 or turns >= 20"}`.

A condition is read with Python's own parser, then only this small language is accepted: metric names and
`turns` (also `turn`: the turns completed), numbers, the comparisons `< <= > >= == !=` (chained too), `and`,
`or`, `not` and parentheses. Nothing is ever evaluated as Python: the tree is walked here, node by node.
A metric without a value this turn makes its comparisons false.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TURN_NAMES = {"turns", "turn"}
COMPARISONS: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
MAX_LENGTH = 500


class ConditionError(ValueError):
    """A condition that is not of the language above; the message says where and what is allowed."""


@dataclass(frozen=True)
class EndCondition:
    text: str
    tree: ast.expr
    names: frozenset[str]  # the metric names it reads

    def holds(self, *, turns: int, metrics: Mapping[str, float]) -> bool:
        """Whether the run ends now, `turns` completed and the latest value of each metric in `metrics`."""
        return bool(_evaluate(self.tree, turns, metrics))

    @property
    def turn_cap(self) -> int | None:
        """N of a top-level `or turns >= N` (`turns > N-1`, `turns == N`): the most turns the condition lets a run
        play, when it says so itself."""
        terms = self.tree.values if isinstance(self.tree, ast.BoolOp) and isinstance(self.tree.op, ast.Or) else [self.tree]
        caps = [cap for term in terms if (cap := _cap(term)) is not None]
        return min(caps) if caps else None


def parse_condition(text: str) -> EndCondition:
    text = text.strip()
    if not text:
        raise ConditionError("the condition is empty; write e.g. `cooperation_level >= 8 or turns >= 20`")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ConditionError(f"not a condition at column {exc.offset or 1}: {text!r}; write comparisons such as "
                             "`cooperation_level >= 8`, joined with and, or, not and parentheses") from None
    names: set[str] = set()
    _check(tree, text, names)
    return EndCondition(text, tree, frozenset(names - TURN_NAMES))


def _check(node: ast.AST, text: str, names: set[str]) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, text, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, text, names)
    elif isinstance(node, ast.Compare):
        if any(type(op) not in COMPARISONS for op in node.ops):
            raise ConditionError(f"{_at(node, text)}: compare with <, <=, >, >=, == or != only")
        for operand in (node.left, *node.comparators):
            _check_operand(operand, text, names)
    else:
        raise ConditionError(f"{_at(node, text)}: expected a comparison such as `cooperation_level >= 8` "
                             f"(joined with and, or, not), got {ast.get_source_segment(text, node) or '?'}")


def _check_operand(node: ast.AST, text: str, names: set[str]) -> None:
    if isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        pass
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
        pass
    else:
        raise ConditionError(f"{_at(node, text)}: compare metric names, `turns` and numbers only, not "
                             f"{ast.get_source_segment(text, node) or '?'}")


def _at(node: ast.AST, text: str) -> str:
    return f"column {getattr(node, 'col_offset', 0) + 1}"


def _value(node: ast.expr, turns: int, metrics: Mapping[str, float]) -> float | None:
    if isinstance(node, ast.Name):
        return float(turns) if node.id in TURN_NAMES else metrics.get(node.id)
    if isinstance(node, ast.UnaryOp):
        return -float(node.operand.value)  # type: ignore[attr-defined]
    return float(node.value)  # type: ignore[attr-defined]


def _evaluate(node: ast.expr, turns: int, metrics: Mapping[str, float]) -> bool:
    if isinstance(node, ast.BoolOp):
        results = (_evaluate(value, turns, metrics) for value in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        return not _evaluate(node.operand, turns, metrics)
    assert isinstance(node, ast.Compare)
    left = _value(node.left, turns, metrics)
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        right = _value(right_node, turns, metrics)
        if left is None or right is None or not COMPARISONS[type(op)](left, right):
            return False
        left = right
    return True


def _cap(term: ast.expr) -> int | None:
    if not (isinstance(term, ast.Compare) and len(term.ops) == 1 and isinstance(term.left, ast.Name)
            and term.left.id in TURN_NAMES and isinstance(term.comparators[0], ast.Constant)):
        return None
    bound = term.comparators[0].value
    if not isinstance(bound, (int, float)) or isinstance(bound, bool):
        return None
    op = type(term.ops[0])
    if op in (ast.GtE, ast.Eq):
        return max(1, int(-(-bound // 1)))  # the first whole turn at or past the bound
    if op is ast.Gt:
        return max(1, int(bound // 1) + 1)
    return None
