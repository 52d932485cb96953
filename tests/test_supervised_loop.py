import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from supervised.loop import TrainingRun, train_epoch


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    (events,) = folder.glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0}).Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def test_steps_count_on_across_epochs_and_reach_tensorboard(tmp_path):
    with TrainingRun(tmp_path, progress=False, show={"loss": "loss"}) as run:
        run.log.every = 2  # a block boundary inside each epoch, and a remainder at its end
        first = train_epoch(run, [1.0, 2.0, 3.0], lambda x: {"loss": torch.tensor(x)}, "e1")
        second = train_epoch(run, [4.0], lambda x: {"loss": torch.tensor(x)}, "e2")
        run.scalars({"accuracy": 0.5}, 2, prefix="test/")
        run.checkpoint({"epoch": 2})
    run.write_results({"steps": run.steps})
    assert first == [(1, {"loss": 1.0}), (2, {"loss": 2.0}), (3, {"loss": 3.0})]
    assert second == [(4, {"loss": 4.0})] and run.steps == 4
    scalars = _scalars(tmp_path)
    assert scalars["loss"] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
    assert scalars["test/accuracy"] == [(2, 0.5)]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True) == {"epoch": 2}
    assert json.loads((tmp_path / "results.json").read_text()) == {"steps": 4}
    assert run.seconds() > 0


def test_a_non_finite_loss_stops_the_run_and_keeps_its_events(tmp_path):
    losses = iter([1.0, float("nan"), 3.0])
    with pytest.raises(RuntimeError, match=r"^non-finite loss at step 2: loss nan, aux 2$"):
        with TrainingRun(tmp_path, progress=False) as run:
            train_epoch(run, range(3), lambda i: {"loss": torch.tensor(next(losses)),
                                                  "aux": torch.tensor(2.0)}, "e1")  # fmt: skip
    assert [step for step, _ in _scalars(tmp_path)["loss"]] == [1, 2, 3]  # the writer was closed


def test_ctrl_c_writes_the_waiting_scalars_and_the_interrupt_state(tmp_path):
    def step(i: int) -> dict[str, torch.Tensor]:
        if i == 2:
            raise KeyboardInterrupt
        return {"loss": torch.tensor(float(i))}

    with pytest.raises(KeyboardInterrupt):
        with TrainingRun(tmp_path, progress=False, on_interrupt=lambda: {"finished": False}) as run:
            train_epoch(run, range(5), step, "e1")
    assert _scalars(tmp_path)["loss"] == [(1, 0.0), (2, 1.0)]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True) == {"finished": False}


@pytest.mark.parametrize("out,checkpoint", [(None, True), ("run", False)])
def test_a_run_writes_only_what_it_is_asked_to(tmp_path, out, checkpoint):
    folder = tmp_path / out if out else None
    with TrainingRun(folder, progress=False, checkpoint=checkpoint) as run:
        assert (run.writer is None) == (folder is None)
        train_epoch(run, [1.0], lambda x: {"loss": torch.tensor(x)}, "e1")
        run.checkpoint({"epoch": 1})
    run.write_results({"steps": run.steps})
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    if folder is None:
        assert written == []
    else:
        assert [n for n in written if not n.startswith("events.out")] == ["results.json"]
