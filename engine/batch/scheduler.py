"""The batch scheduler: which of a batch's planned runs start now. One rule for the site's batches and V1's
batch command line, each of which only says what is under way and plays what is admitted."""

from __future__ import annotations

from engine.batch.budget import budget_allows


class BatchScheduler:
    """Admits a batch's planned runs one at a time, in plan order: a run starts while fewer than
    `max_parallel` are under way, its owner has room for another (`room`, None: no limit) and its reserve
    fits in the budget beside what the batch's runs hold (`committed`). When the next run does not fit and
    nothing under way could give money back, the batch stops: `halt_reason` says why."""

    def __init__(self, *, budget_limit: float | None, max_parallel: int, active: int, committed: float,
                 room: int | None = None) -> None:
        self.budget_limit = budget_limit
        self.max_parallel = max_parallel
        self.active = active
        self.committed = committed
        self.room = room
        self.halt_reason: str | None = None

    @property
    def has_slot(self) -> bool:
        """Whether another run could start now, money aside."""
        return self.active < self.max_parallel and (self.room is None or self.room > 0)

    def admit(self, name: str, reserve: float | None, *, held: float = 0.0) -> bool:
        """Whether the next planned run, `name`, may start now with `reserve` held for it; if so it is counted.
        `held`: what the run already holds of the budget (a run started before, continued now)."""
        if not self.has_slot:
            return False
        others = self.committed - held
        if not budget_allows(budget_limit=self.budget_limit, committed=others, run_limit=reserve):
            if self.active == 0 and self.budget_limit is not None:
                need = "an unbounded run" if reserve is None else f"up to ${reserve:.4f}"
                self.halt_reason = (f"budget: ${max(0.0, self.budget_limit - others):.4f} of ${self.budget_limit:.2f} "
                                    f"left, and {name} may cost {need}")
            return False
        self.committed = others + (reserve or 0.0)
        self.active += 1
        if self.room is not None:
            self.room -= 1
        return True
