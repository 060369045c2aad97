"""Every kind of event the engine emits, with the payload each carries."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Every kind of event the engine emits. The value is the wire name (`"turn_completed"`)."""

    # Scenario lifecycle. data: {"status", "turn", "max_turns"} plus "reason" / "error" where relevant.
    SCENARIO_STARTED = "scenario_started"
    SCENARIO_RESUMED = "scenario_resumed"
    SCENARIO_PAUSED = "scenario_paused"
    SCENARIO_HALTED = "scenario_halted"
    SCENARIO_CANCELLED = "scenario_cancelled"
    SCENARIO_COMPLETED = "scenario_completed"
    SCENARIO_FAILED = "scenario_failed"
    # The run stopped until a person decides for a human seat. data as the other ends, plus "seats".
    SCENARIO_WAITING = "scenario_waiting"
    # A seat changed hands (taken over by a person, handed back, or given to the model after a timeout).
    # data: {"actor", "control" ("ai" | "human"), "reason"}.
    SEAT_CONTROL_CHANGED = "seat_control_changed"
    # Turns. data: {"turn"} plus "error" on failure.
    TURN_STARTED = "turn_started"
    TURN_COMPLETED = "turn_completed"
    TURN_FAILED = "turn_failed"
    # Phases. data: {"turn", "phase"} plus "attempt", "error".
    PHASE_STARTED = "phase_started"
    PHASE_COMPLETED = "phase_completed"
    PHASE_FAILED = "phase_failed"
    # Actor decisions. data: {"turn", "actor"} plus the decision fields or "error".
    ACTOR_DECISION_STARTED = "actor_decision_started"
    ACTOR_DECISION_COMPLETED = "actor_decision_completed"
    ACTOR_DECISION_FAILED = "actor_decision_failed"
    # A message between actors. data: Communication.to_dict().
    COMMUNICATION_SENT = "communication_sent"
    # data: {"turn", "content", "exogenous_events"}.
    WORLD_STATE_UPDATED = "world_state_updated"
    # An outside event the world update used, one per event, just before that turn's world_state_updated.
    # data: {"turn", "name", "kind" (scheduled, trend, random, conditional), "text"}.
    EXOGENOUS_EVENT = "exogenous_event"
    # Costs. data: CostRecord.to_dict() plus running totals; warning/exceeded: {"spent", "limit", ...}.
    COST_INCURRED = "cost_incurred"
    # One answered model call, traced (when the run traces its calls; `engine.calls.call_trace` gives the data):
    # {"turn", "phase", "task", "actor", "subject", "model", "provider", "attempt", "outcome" ("used",
    # "re-asked", "unusable"), "repair", "error", "tries", tokens, "cost", "latency_ms", "cached", "request"
    # ({"messages", "temperature", "seed", "max_tokens", "schema_name"}), "answer", "parsed"}.
    MODEL_CALLED = "model_called"
    CREDIT_LIMIT_WARNING = "credit_limit_warning"
    CREDIT_LIMIT_EXCEEDED = "credit_limit_exceeded"
    # data: MetricRecord.to_dict() plus "threshold" (None, "warning" or "critical").
    METRIC_RECORDED = "metric_recorded"
    # A value at or past a warning or critical threshold, after its metric_recorded. data: {"turn",
    # "name", "actor", "value", "level" ("warning" | "critical"), "limit" (the threshold reached), "direction"
    # ("above" | "below"), "previous_level" (the same series' level the turn before: None for a new crossing),
    # "halts" (true when the scenario stops the run at this level)}.
    METRIC_THRESHOLD_CROSSED = "metric_threshold_crossed"
    # Validation. started: {"turn", "checks"}; completed: {"turn", "results"}; failed: a failing result.
    VALIDATION_STARTED = "validation_started"
    VALIDATION_COMPLETED = "validation_completed"
    VALIDATION_FAILED = "validation_failed"
    # data: {"turn", "status", "location"}.
    STATE_SAVED = "state_saved"
    # A subscriber raised. data: {"event_type", "handler", "error"}.
    HANDLER_FAILED = "handler_failed"
