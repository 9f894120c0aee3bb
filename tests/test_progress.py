"""`rllib train`'s progress table and trial summary (`rllib_mag.progress`), on hand-made Tune results."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rllib_mag.progress import ProgressTable, format_value, result_value

NAN = float("nan")


class FakeTrial(SimpleNamespace):
    def __str__(self) -> str:
        return "MAG_smax_team_00000"


def result(iteration: int, steps: int, ret: float, win: float = NAN, loss: float = NAN) -> dict:
    return {"training_iteration": iteration, "num_env_steps_sampled_lifetime": steps, "time_total_s": 1.5 * iteration,
            "env_runners": {"episode_return_mean": ret, "win_rate": win}, "world_model": {"model_loss": loss}}


def trial(env: str = "smax_team", checkpoint: str | None = "/runs/t/checkpoint_000001") -> FakeTrial:
    return FakeTrial(status="TERMINATED", path="/runs/t", config={"env": env},
                     checkpoint=SimpleNamespace(path=checkpoint) if checkpoint else None)


def test_result_values_from_nested_and_flattened_results():
    assert result_value({"a": {"b": 2}}, "a/b") == 2 and result_value({"a/b": 3}, "a/b") == 3
    assert result_value({"a": {}}, "a/b") is None and result_value({"a": 1}, "a/b") is None
    assert (format_value(None, "{:.2f}"), format_value(NAN, "{:.2f}"), format_value(7.0, "{:d}")) == ("-", "-", "7")


def test_rows_are_throttled_carry_the_last_known_values_and_end_with_the_last_iteration():
    out = io.StringIO()
    table, t = ProgressTable(interval_s=1e9, out=out), trial()
    for r in (result(1, 25, 2.0), result(2, 50, 3.0, win=0.0, loss=8.5), result(3, 75, 5.0)):
        table.on_trial_result(0, [], t, r)
    table.on_trial_complete(0, [], t)
    header, first, last = out.getvalue().splitlines()
    assert header.split() == ["trial", "iter", "env", "steps", "win", "rate", "return", "model", "loss", "time", "s"]
    assert first.split() == ["MAG_smax_team_00000", "1", "25", "-", "2.00", "-", "2"]
    # iteration 3 has no win rate and no model step: the row keeps iteration 2's values
    assert last.split() == ["MAG_smax_team_00000", "3", "75", "0.00", "5.00", "8.500", "4"]
    every = io.StringIO()
    unthrottled = ProgressTable(interval_s=0.0, out=every)
    for r in (result(1, 25, 2.0), result(2, 50, 3.0)):
        unthrottled.on_trial_result(0, [], t, r)
    unthrottled.on_trial_complete(0, [], t)  # iteration 2 was printed already: no repeat
    assert len(every.getvalue().splitlines()) == 3
    quiet = io.StringIO()
    ProgressTable(rows=False, out=quiet).on_trial_result(0, [], t, result(1, 25, 2.0))
    assert quiet.getvalue() == ""


def test_summary_compares_the_means_of_the_first_and_last_ten_values():
    table, t = ProgressTable(out=io.StringIO()), trial()
    for i in range(1, 31):
        table.on_trial_result(0, [], t, result(i, 25 * i, float(i), win=0.0 if i < 25 else 1.0))
    lines = table.summary(t).splitlines()
    assert lines[1] == "  win rate: 0.00 (mean of iterations 1-10) -> 0.60 (mean of iterations 21-30)"
    assert lines[2] == "  return: 5.50 (mean of iterations 1-10) -> 25.50 (mean of iterations 21-30)"


def test_summary_names_first_and_last_values_the_checkpoint_and_next_commands():
    table, t = ProgressTable(out=io.StringIO()), trial()
    for r in (result(1, 25, 2.0), result(2, 50, 3.0, win=0.0), result(3, 75, 6.5, win=0.25)):
        table.on_trial_result(0, [], t, r)
    lines = table.summary(t).splitlines()
    assert lines[0] == "trial MAG_smax_team_00000: TERMINATED"
    assert lines[1] == "  win rate: 0.12 (mean of iterations 2-3) -> 0.12 (mean of iterations 2-3)"
    assert lines[2] == "  return: 3.83 (mean of iterations 1-3) -> 3.83 (mean of iterations 1-3)"
    assert lines[3] == "  env steps: 75, time: 4 s"
    assert "  evaluate:   rllib evaluate /runs/t/checkpoint_000001 --episodes 32" in lines
    assert "  curves:     rllib plot /runs/t   or   tensorboard --logdir /runs/t" in lines
    per_agent = ProgressTable(out=io.StringIO()).summary(trial(env="smax", checkpoint=None))
    assert "evaluate" not in per_agent and "checkpoint" not in per_agent
