"""Predicted failures (`ai.predict_failure`, `run --predict`, `analyze --predict`): how likely
a task's next run is to fail, learned from the history, with the reasons in words.

Lifecycle of the model:
- *Training* replays the history's final outcomes through `features.FeatureState` (oldest
  run first; every run's features are taken before it is folded in) and fits a logistic
  regression (predict_model.py) on the runs whose task had at least MIN_TRAIN_PRIOR runs
  before them. It first fits on the oldest 75 % of runs and measures the newest 25 % (the
  model's own chronological evaluation, kept with it), then fits again on everything.
- The fitted model, its evaluation and the feature state are saved as one JSON file,
  `<home>/models/failure.json`, with the number of final outcomes it was trained on and the
  id of the last attempt row it has seen. Loading it reads that file and folds in the rows
  recorded since (an index range on the attempts' ids), which keeps a prediction cheap.
- It is *retrained* when it is missing, unreadable, made for other features, or when the
  history has grown by RETRAIN_GROWTH (20 %) of what it was trained on, and by RETRAIN_MIN
  (50) final outcomes at least. Otherwise the weights stay and only the state moves on (saved
  again once REFRESH_EVERY new outcomes have been folded in).
- *Too little history* is said, never guessed around: a task with fewer than MIN_TASK_RUNS
  finished runs, or a history with fewer than MIN_CLASS failures (or successes) to learn from,
  gets `probability = None`, `method = "insufficient_history"` and the reason.
"""

from __future__ import annotations

import json
import os
import time

from sloth_runner.analytics import predict_model
from sloth_runner.analytics.features import (
    FEATURES,
    FeatureState,
    Outcome,
    by_run,
    flat_params,
    outcomes_from_records,
    split_key,
    task_key,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.store import Store

METHOD = "logistic_regression"
INSUFFICIENT = "insufficient_history"
VERSION = 2
MIN_TASK_RUNS = 30      # a task's finished runs before it gets a probability
MIN_TRAIN_PRIOR = 10    # a run is a training example once its task had this many before it
MIN_CLASS = 10          # failures (and successes) among the training examples, at least
HOLDOUT = 0.25          # the newest share of runs the saved evaluation is measured on
MAX_FIT_ROWS = 50_000   # the most recent training examples the weights are fitted on
RETRAIN_GROWTH = 0.2
RETRAIN_MIN = 50
REFRESH_EVERY = 500     # new outcomes folded in before the state is saved again
TOP_FACTORS = 3
MIN_WEIGHT = 0.1        # a contribution smaller than this (log-odds) is no reason


class Example:
    """One outcome as the model sees it: its features before its run, what happened, the
    baselines' predictions, how many runs of its task came before, and its run's place."""

    __slots__ = ("outcome", "x", "failed", "last", "rate", "prior", "run_no", "run_start")

    def __init__(self, outcome: Outcome, x: list[float | None], last: float, rate: float,
                 prior: int, run_no: int, run_start: float) -> None:
        self.outcome, self.x, self.failed = outcome, x, outcome.failed
        self.last, self.rate, self.prior = last, rate, prior
        self.run_no, self.run_start = run_no, run_start


def replay(outcomes: list[Outcome], state: FeatureState | None = None
           ) -> tuple[FeatureState, list[Example]]:
    """Fold `outcomes` into `state` (a new one by default) run by run, and return the
    examples: each outcome with the features it had before its run."""
    state = state or FeatureState()
    examples: list[Example] = []
    for run_no, group in enumerate(by_run(outcomes)):
        start = group[0].started_at
        for o in group:
            last, rate = state.baselines(o)
            examples.append(Example(o, state.features(o), last, rate, state.runs_of(o.key),
                                    run_no, start))
        state.update_run(group)
    return state, examples


def fit_examples(examples: list[Example]) -> tuple[predict_model.LogisticModel | None, str]:
    """The model fitted on the eligible examples (the most recent MAX_FIT_ROWS), or None and
    why it could not be."""
    chosen = [e for e in examples if e.prior >= MIN_TRAIN_PRIOR][-MAX_FIT_ROWS:]
    failures = sum(1 for e in chosen if e.failed)
    successes = len(chosen) - failures
    if failures < MIN_CLASS or successes < MIN_CLASS:
        few = "failures" if failures < MIN_CLASS else "successes"
        return None, (f"too few {few} to learn from: {failures} failures and {successes} "
                      f"successes among {len(chosen)} finished task runs with at least "
                      f"{MIN_TRAIN_PRIOR} runs of their task before them (the model needs "
                      f"{MIN_CLASS} of each)")
    model = predict_model.fit(FEATURES, [e.x for e in chosen], [e.failed for e in chosen])
    return model, ""


def evaluate(examples: list[Example], share: float,
             others: dict[str, Callable[[Example], float]] | None = None) -> dict[str, Any]:
    """Train on the first `share` of runs (by start), test on the rest: the model against
    the two baselines (the task's last outcome; its failure rate so far). Each test outcome
    is predicted with the features of its time, which know every earlier run but nothing of
    its own or later ones; the weights know only the training runs. F1 uses, for each
    predictor, the threshold with the best F1 on the training runs. `others` are more
    predictors to measure the same way (the benchmark's oracle)."""
    starts = sorted({(e.run_no, e.run_start) for e in examples})
    cut, cut_at = predict_model.chronological_split(starts, share, lambda r: r[1])
    first_future = starts[cut][0] if cut < len(starts) else len(starts)
    past = [e for e in examples if e.run_no < first_future]
    future = [e for e in examples if e.run_no >= first_future and e.prior >= MIN_TASK_RUNS]
    out: dict[str, Any] = {"train_runs": cut, "test_runs": len(starts) - cut,
                           "test_outcomes": len(future),
                           "test_failures": sum(1 for e in future if e.failed),
                           "cut_at": cut_at if cut < len(starts) else None}
    model, reason = fit_examples(past)
    if model is None:
        out["reason"] = reason
        return out
    if not future or out["test_failures"] in (0, len(future)):
        out["reason"] = "the newest runs need both failures and successes to measure on"
        return out
    train = [e for e in past if e.prior >= MIN_TRAIN_PRIOR]
    y_train = [e.failed for e in train]
    y = [e.failed for e in future]
    predictors = {
        "model": ([model.probability(e.x) for e in train],
                  [model.probability(e.x) for e in future]),
        "last_outcome": ([e.last for e in train], [e.last for e in future]),
        "failure_rate": ([e.rate for e in train], [e.rate for e in future]),
    }
    for name, predictor in (others or {}).items():
        predictors[name] = ([predictor(e) for e in train], [predictor(e) for e in future])
    for name, (p_train, p_test) in predictors.items():
        threshold = 0.5 if name == "last_outcome" else \
            predict_model.best_threshold(p_train, y_train)
        out[name] = {"auroc": _round(predict_model.auroc(p_test, y)),
                     "brier": _round(predict_model.brier(p_test, y)),
                     "f1": round(predict_model.f1(p_test, y, threshold), 4),
                     "threshold": round(threshold, 4)}
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class Model:
    """A trained (or untrainable) model with the feature state it predicts from."""

    def __init__(self, state: FeatureState, fitted: predict_model.LogisticModel | None,
                 reason: str, trained_n: int, watermark: int,
                 evaluation: dict[str, Any] | None = None, trained_at: float | None = None,
                 state_n: int | None = None) -> None:
        self.state, self.fitted, self.reason = state, fitted, reason
        self.trained_n = trained_n
        self.state_n = trained_n if state_n is None else state_n
        self.watermark = watermark
        self.evaluation = evaluation or {}
        self.trained_at = time.time() if trained_at is None else trained_at

    @property
    def method(self) -> str:
        return METHOD if self.fitted is not None else INSUFFICIENT

    def predict(self, o: Outcome) -> dict[str, Any]:
        """{probability, top_factors = [{factor, weight}], method, n_history} for a run of
        `o.task` in `o`'s circumstances; probability None (and a reason) when the history is
        too short to say."""
        n = self.state.runs_of(o.key)
        if self.fitted is None:
            return _insufficient(n, self.reason)
        if n < MIN_TASK_RUNS:
            what = f"no finished runs of {o.task} in the history" if not n else \
                f"{o.task} has {n} finished run{'s' if n > 1 else ''} in the history"
            return _insufficient(n, f"{what}; a prediction needs {MIN_TASK_RUNS}")
        x = self.state.features(o)
        contributions = self.fitted.contributions(x)
        p = predict_model.sigmoid(self.fitted.intercept + sum(contributions))
        ranked = sorted(((c, name) for c, name in zip(contributions, FEATURES, strict=True)
                         if abs(c) >= MIN_WEIGHT), key=lambda cn: -abs(cn[0]))
        factors = [{"factor": self.state.explain(name, o), "weight": round(c, 3),
                    "feature": name} for c, name in ranked[:TOP_FACTORS]]
        return {"probability": round(p, 4), "top_factors": factors, "method": METHOD,
                "n_history": n}

    def advance(self, outcomes: list[Outcome]) -> None:
        """Fold in outcomes recorded since the state was saved (weights unchanged)."""
        for group in by_run(outcomes):
            self.state.update_run(group)
        self.state_n += len(outcomes)
        self.watermark = max([self.watermark, *(o.row_id for o in outcomes)])

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "features": list(FEATURES), "method": self.method,
                "reason": self.reason, "trained_at": self.trained_at,
                "trained_n": self.trained_n, "state_n": self.state_n,
                "watermark": self.watermark, "evaluation": self.evaluation,
                "model": self.fitted.to_json() if self.fitted is not None else None,
                "state": self.state.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Model:
        fitted = data["model"]
        return cls(FeatureState.from_json(data["state"]),
                   predict_model.LogisticModel.from_json(fitted) if fitted else None,
                   data["reason"], data["trained_n"], data["watermark"], data["evaluation"],
                   data["trained_at"], data["state_n"])


def _insufficient(n: int, reason: str) -> dict[str, Any]:
    return {"probability": None, "top_factors": [], "method": INSUFFICIENT, "n_history": n,
            "reason": reason}


def train(outcomes: list[Outcome], watermark: int = 0) -> Model:
    """A model of `outcomes` (oldest first), with its evaluation on the newest HOLDOUT."""
    state, examples = replay(outcomes)
    fitted, reason = fit_examples(examples)
    evaluation = evaluate(examples, 1 - HOLDOUT) if fitted is not None else {}
    return Model(state, fitted, reason, len(outcomes), watermark, evaluation)


def needs_training(trained_n: int, now_n: int) -> bool:
    """Whether a model trained on `trained_n` final outcomes is stale at `now_n`."""
    return now_n - trained_n >= max(RETRAIN_MIN, RETRAIN_GROWTH * trained_n)


def model_path() -> str:
    from sloth_runner import paths

    return os.path.join(paths.home(), "models", "failure.json")


class FailurePredictor:
    """The model of one history (a store), loaded, brought up to date or retrained as the
    module's doc says, and asked for predictions."""

    def __init__(self, store: Store, path: str | None = None) -> None:
        self.store = store
        self.path = path or model_path()
        self._model: Model | None = None
        self.retrained = False  # whether getting the model meant training it

    def model(self) -> Model:
        if self._model is None:
            self._model = self._load_or_train()
        return self._model

    def _load_or_train(self) -> Model:
        from sloth_runner.store.predictions import final_outcomes

        saved = self._read()
        if saved is None:
            return self.retrain()
        new = outcomes_from_records(final_outcomes(self.store, after_id=saved.watermark))
        if needs_training(saved.trained_n, saved.state_n + len(new)):
            return self.retrain()
        if new:
            saved.advance(new)
            if len(new) >= REFRESH_EVERY:  # so later loads need not fold these in again
                self._write(saved)
        return saved

    def retrain(self) -> Model:
        from sloth_runner.store.predictions import final_outcomes

        rows = final_outcomes(self.store)
        model = train(outcomes_from_records(rows),
                      max((int(r["id"]) for r in rows), default=0))
        self._write(model)
        self.retrained = True
        self._model = model
        return model

    def _read(self) -> Model | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("version") != VERSION or data.get("features") != list(FEATURES):
                return None
            return Model.from_json(data)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, half-written by a crash, or of another version: retrain

    def _write(self, model: Model) -> None:
        """Atomically (a reader never sees half a file): a temporary file, then rename."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            # dumps, not dump: dump feeds the file piece by piece from the pure-Python encoder
            fh.write(json.dumps(model.to_json(), separators=(",", ":")))
        os.replace(tmp, self.path)

    def predict(self, workflow: str, task: str, *, host: str | None = None,
                params: dict[str, Any] | None = None, load: float | None = None,
                changed: int | None = None, at: float | None = None) -> dict[str, Any]:
        """The failure risk of `workflow/task` run now (or at `at`) on `host`."""
        o = Outcome(workflow, task, time.time() if at is None else at, host=host, load=load,
                    changed=changed, params=flat_params(params) if params is not None else None)
        return self.model().predict(o)

    def predict_tasks(self, tasks: list[tuple[str, str]], *, host: str | None = None,
                      params: dict[str, Any] | None = None, load: float | None = None,
                      changed: int | None = None, at: float | None = None,
                      last_params: bool = False) -> list[dict[str, Any]]:
        """`predict` for each (workflow, task), all in the same circumstances. Parameters
        not given are unknown (an average run), or with `last_params` those of each task's
        last run: "if it ran again as it did last time"."""
        model = self.model()
        when = time.time() if at is None else at
        flat = flat_params(params) if params is not None else None
        out = []
        for wf, task in tasks:
            given = flat
            if given is None and last_params:
                t = model.state.tasks.get(task_key(wf, task))
                given = t.last_params if t is not None else None
            out.append({"workflow": wf, "task": task, **model.predict(Outcome(
                wf, task, when, host=host, load=load, changed=changed, params=given))})
        return out

    def known_tasks(self) -> list[tuple[str, str]]:
        """(workflow, task) of every task the history has final outcomes of."""
        return sorted(split_key(k) for k in self.model().state.tasks)

    def last_run(self, workflow: str, task: str) -> float | None:
        t = self.model().state.tasks.get(task_key(workflow, task))
        return t.last_run if t is not None else None

    def summary(self) -> dict[str, Any]:
        """What the model is: method, what it was trained on and when, and its evaluation on
        the newest HOLDOUT of the history (or why there is no model)."""
        m = self.model()
        out: dict[str, Any] = {"method": m.method, "trained_on": m.trained_n,
                               "trained_at": m.trained_at, "retrained_now": self.retrained,
                               "min_task_runs": MIN_TASK_RUNS, "evaluation": m.evaluation}
        if m.reason:
            out["reason"] = m.reason
        return out


def current_load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


OPTIONS = ("workflow", "host", "params", "load", "changed_files")


def predict_failure(predictor: FailurePredictor, task: Any, options: dict[str, Any]
                    ) -> dict[str, Any]:
    """`ai.predict_failure(task, {workflow, host, params, load, changed_files})`: options
    checked (an error names the field), the workflow found when the task's name is enough,
    and a task without history answered with the tasks that have some."""
    from sloth_runner.errors import ConfigError
    from sloth_runner.store.runs import HOST

    if not isinstance(task, str) or not task:
        raise ConfigError("predict_failure.task", "must be a task name (a string)")
    for key in options:
        if key not in OPTIONS:
            raise ConfigError(f"predict_failure.{key}",
                              f"unknown option (options: {', '.join(OPTIONS)})")
    workflow, host, params = options.get("workflow"), options.get("host"), \
        options.get("params")
    load, changed = options.get("load"), options.get("changed_files")
    for key, value, kind, what in (("workflow", workflow, str, "a workflow name"),
                                   ("host", host, str, "a host name"),
                                   ("params", params, dict, "a table of parameters"),
                                   ("load", load, (int, float), "a number (load average)"),
                                   ("changed_files", changed, int, "a number of files")):
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ConfigError(f"predict_failure.{key}", f"must be {what}")
    known = predictor.known_tasks()
    if workflow is None:
        workflows = sorted({wf for wf, t in known if t == task})
        if len(workflows) > 1:
            raise ConfigError("predict_failure.workflow", f"task '{task}' is in several "
                              f"workflows ({', '.join(workflows)}): say which")
        workflow = workflows[0] if workflows else ""
    result = predictor.predict_tasks(
        [(workflow, task)], host=host or HOST, params=params,
        load=float(load) if load is not None else current_load(), changed=changed)[0]
    if (workflow, task) not in known:
        names = [f"{wf}/{t}" if wf else t for wf, t in known]
        listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20
                                          else "")
        where = f" of workflow '{workflow}'" if workflow else ""
        result["reason"] = f"no finished runs of task '{task}'{where} in the history" + (
            f" (tasks with history: {listed})" if names else " (the history is empty)")
    return result
