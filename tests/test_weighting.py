"""Task weightings: each matches its formula; checkpoints, errors, precision, DDP."""

import math
import os

import pytest
import torch
import torch.nn as nn

from avemotion.config import ParamsError, build
from avemotion.weighting import WEIGHTINGS, WeightingConfig, build_weighting


N_CLASSES = {"emotion": 4, "gender": 2}


def task_losses(e: float, g: float) -> dict[str, torch.Tensor]:
    return {"emotion": torch.tensor(float(e), requires_grad=True), "gender": torch.tensor(float(g), requires_grad=True)}


def test_static_uses_the_given_weights():
    w = build_weighting("static", weights=(0.3, 0.7))
    step = w(task_losses(2.0, 1.0))
    assert step.loss.item() == pytest.approx(0.3 * 2.0 + 0.7 * 1.0)
    assert step.weights == pytest.approx({"emotion": 0.3, "gender": 0.7})
    assert build_weighting("static")(task_losses(1, 1)).weights == {"emotion": 0.5, "gender": 0.5}
    assert list(w.parameters()) == []


def test_dynamic_gradient_is_we_wg_times_loss_difference():
    w = build_weighting("dynamic")
    assert w.current_weights() == {"emotion": 0.5, "gender": 0.5}  # logits start at 0
    with torch.no_grad():
        w.logits.copy_(torch.tensor([0.2, -0.1]))
    L_e, L_g = 1.3, 0.4
    step = w(task_losses(L_e, L_g))
    step.loss.backward()
    w_e, w_g = math.exp(0.2) / (math.exp(0.2) + math.exp(-0.1)), math.exp(-0.1) / (math.exp(0.2) + math.exp(-0.1))
    assert step.weights == pytest.approx({"emotion": w_e, "gender": w_g})
    assert step.loss.item() == pytest.approx(w_e * L_e + w_g * L_g)
    assert w.logits.grad[0].item() == pytest.approx(w_e * w_g * (L_e - L_g))
    assert w.logits.grad[1].item() == pytest.approx(-w_e * w_g * (L_e - L_g))


def test_dynamic_drifts_toward_the_easier_task():
    # PAPER.md's warning: descent puts weight on the task with the smaller loss
    w = build_weighting("dynamic")
    opt = torch.optim.SGD(w.parameters(), lr=1.0)
    for _ in range(20):
        opt.zero_grad()
        w(task_losses(1.2, 0.3)).loss.backward()
        opt.step()
    assert w.current_weights()["gender"] > 0.9


def test_uncertainty_matches_kendall_on_hand_computed_numbers():
    w = build_weighting("uncertainty")
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.5, -0.3]))
    step = w(task_losses(2.0, 0.5))
    # exp(-0.5) * 2 + 0.5 + exp(0.3) * 0.5 - 0.3
    assert step.loss.item() == pytest.approx(0.6065307 * 2 + 0.5 + 1.3498588 * 0.5 - 0.3, abs=1e-6)
    assert step.weights == pytest.approx({"emotion": 0.6065307, "gender": 1.3498588})
    step.loss.backward()
    # dL/ds = 1 - exp(-s) L
    assert w.log_vars.grad.tolist() == pytest.approx([1 - 0.6065307 * 2.0, 1 - 1.3498588 * 0.5], abs=1e-6)


def test_dwa_matches_liu_on_hand_computed_numbers():
    w = build_weighting("dwa")
    assert w(task_losses(1.0, 1.0)).weights == {"emotion": 1.0, "gender": 1.0}
    w.end_epoch({"emotion": 1.0, "gender": 2.0})
    assert w.current_weights() == {"emotion": 1.0, "gender": 1.0}  # 1 for two epochs
    w.end_epoch({"emotion": 0.8, "gender": 1.0})
    # r = (0.8, 0.5); 2 * softmax(r / 2): exp(0.4) = 1.4918247, exp(0.25) = 1.2840254
    want_e = 2 * 1.4918247 / (1.4918247 + 1.2840254)
    assert w.current_weights() == pytest.approx({"emotion": want_e, "gender": 2 - want_e})
    step = w(task_losses(3.0, 1.0))
    assert step.loss.item() == pytest.approx(want_e * 3.0 + (2 - want_e) * 1.0, rel=1e-6)
    w.end_epoch({"emotion": 0.4, "gender": 0.9})  # r = (0.5, 0.9): gender's loss fell slower
    assert w.current_weights()["gender"] > 1.0


def test_dwa_history_is_checkpointed():
    w = build_weighting("dwa", temperature=1.0)
    w.end_epoch({"emotion": 1.0, "gender": 2.0})
    resumed = build_weighting("dwa", temperature=1.0)
    resumed.load_state_dict(w.state_dict())
    for m in (w, resumed):
        m.end_epoch({"emotion": 0.5, "gender": 1.9})
    assert resumed.current_weights() == w.current_weights()
    assert resumed.current_weights()["gender"] > 1.0


class TwoTaskNet(nn.Module):
    """A shared layer and two heads whose gradients on it differ by `ratio`."""

    def __init__(self, ratio: float):
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Linear(4, 4)
        self.ratio = ratio

    def forward(self, x):
        return self.shared(x)  # (B, 4)

    def losses(self, x):
        h = self.shared(x)  # (B, 4)
        return {"emotion": self.ratio * (h**2).mean(), "gender": (h**2).mean()}


def test_gradnorm_moves_weight_toward_the_task_with_the_smaller_gradient_norm():
    net = TwoTaskNet(ratio=10.0)  # emotion's gradient on the shared layer is 10x larger
    w = build_weighting("gradnorm", initial_losses="first_batch")
    opt = torch.optim.SGD(w.parameters(), lr=0.01)
    x = torch.randn(8, 4)
    history = []
    for _ in range(5):
        step = w(net.losses(x), shared=[net.shared.weight])
        opt.zero_grad()
        step.loss.backward()
        opt.step()
        w.after_step()
        history.append(w.current_weights())
    assert history[0]["gender"] > 1.0 > history[0]["emotion"]
    assert history[-1]["gender"] > history[0]["gender"]
    assert sum(history[-1].values()) == pytest.approx(2.0)  # renormalised to K
    # the network's gradient is that of sum w_k L_k with the weights held fixed
    assert net.shared.weight.grad is not None


def test_gradnorm_network_gradient_uses_constant_weights():
    net = TwoTaskNet(ratio=3.0)
    x = torch.randn(8, 4)
    w = build_weighting("gradnorm", initial_losses="first_batch")
    with torch.no_grad():
        w.task_weights.copy_(torch.tensor([0.5, 1.5]))
    w(net.losses(x), shared=[net.shared.weight]).loss.backward()
    got = net.shared.weight.grad.clone()
    net.zero_grad()
    losses = net.losses(x)
    (0.5 * losses["emotion"] + 1.5 * losses["gender"]).backward()
    torch.testing.assert_close(got, net.shared.weight.grad)


def test_gradnorm_initial_losses_default_to_log_of_the_number_of_classes():
    net, x = TwoTaskNet(ratio=3.0), torch.randn(8, 4)
    w = build_weighting("gradnorm", n_classes=N_CLASSES)
    assert w.initial_losses.tolist() == pytest.approx([math.log(4), math.log(2)])
    w(net.losses(x), shared=[net.shared.weight]).loss.backward()
    assert w.initial_losses.tolist() == pytest.approx([math.log(4), math.log(2)])  # not the first batch's
    first = build_weighting("gradnorm", initial_losses="first_batch")
    losses = net.losses(x)
    first(losses, shared=[net.shared.weight])
    assert first.initial_losses.tolist() == pytest.approx([losses["emotion"].item(), losses["gender"].item()])
    with pytest.raises(ValueError, match="n_classes.*first_batch"):
        build_weighting("gradnorm")
    with pytest.raises(ValueError, match="log_classes, first_batch"):
        build_weighting("gradnorm", initial_losses="mean", n_classes=N_CLASSES)


def test_gradnorm_needs_the_shared_parameters():
    with pytest.raises(ValueError, match="last_shared_parameters"):
        build_weighting("gradnorm", n_classes=N_CLASSES)(task_losses(1.0, 1.0))


def test_gradnorm_with_a_grad_scaler_matches_fp32():
    x = torch.randn(8, 4)
    results = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0**12)):
        net, w = TwoTaskNet(ratio=4.0), build_weighting("gradnorm", initial_losses="first_batch")
        step = w(net.losses(x), shared=[net.shared.weight], scaler=scaler)
        loss = step.loss if scaler is None else scaler.scale(step.loss)
        loss.backward()
        grad = w.task_weights.grad / (1.0 if scaler is None else scaler.get_scale())
        results.append(grad)
    torch.testing.assert_close(results[0], results[1])


def test_gradnorm_refuses_fp16_autocast_without_a_scaler():
    net, w = TwoTaskNet(ratio=2.0), build_weighting("gradnorm", initial_losses="first_batch")
    with torch.autocast("cpu", dtype=torch.float16):
        losses = net.losses(torch.randn(8, 4))
        with pytest.raises(RuntimeError, match="GradScaler"):
            w(losses, shared=[net.shared.weight])


@pytest.mark.parametrize("name", list(WEIGHTINGS))
def test_every_weighting_round_trips_through_a_checkpoint(name):
    net, x = TwoTaskNet(ratio=2.0), torch.randn(8, 4)
    w = build_weighting(name, n_classes=N_CLASSES)
    opt = torch.optim.SGD([*net.parameters(), *w.parameters()], lr=0.1)
    for epoch in range(3):
        step = w(net.losses(x), shared=[net.shared.weight])
        opt.zero_grad()
        step.loss.backward()
        opt.step()
        w.after_step()
        w.end_epoch({"emotion": 1.0 / (epoch + 1), "gender": 1.0})
    resumed = build_weighting(name, n_classes=N_CLASSES)
    resumed.load_state_dict(w.state_dict())
    assert resumed.current_weights() == pytest.approx(w.current_weights())
    assert all(math.isfinite(v) for v in w.current_weights().values())


def test_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="static, dynamic, uncertainty, dwa, gradnorm"):
        build_weighting("pcgrad")
    with pytest.raises(ValueError, match="temperature"):
        build_weighting("dwa", temprature=2.0)
    with pytest.raises(ValueError, match="expects exactly"):
        build_weighting("dynamic")({"emotion": torch.tensor(1.0)})


def test_config_from_params():
    cfg = build(WeightingConfig, {"weighting": {"method": "dwa", "dwa_temperature": 1.0}}, "weighting")
    w = cfg.build()
    assert type(w).__name__ == "DWA" and w.temperature == 1.0
    assert build(WeightingConfig, {}, "weighting").build().current_weights() == {"emotion": 0.5, "gender": 0.5}
    with pytest.raises(ParamsError, match="'gradnorm'"):
        build(WeightingConfig, {"weighting": {"method": "equal"}}, "weighting")


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    net = TwoTaskNet(ratio=3.0)
    ddp = DDP(net)
    results = {}
    for name in ("dynamic", "gradnorm"):
        w = build_weighting(name, n_classes=N_CLASSES)
        opt = torch.optim.SGD([*ddp.parameters(), *w.parameters()], lr=0.05)
        for it in range(3):
            x = torch.randn(4, 4, generator=torch.Generator().manual_seed(100 * rank + it))
            h = ddp(x)  # (4, 4)
            losses = {"emotion": 3.0 * (h**2).mean() + rank, "gender": (h**2).mean()}
            step = w(losses, shared=[net.shared.weight])
            opt.zero_grad()
            step.loss.backward()
            opt.step()
            w.after_step()
        results[name] = w.current_weights()
    w = build_weighting("dwa")
    for epoch in range(3):
        w.end_epoch({"emotion": 1.0 + rank - 0.1 * epoch, "gender": 1.0})
    results["dwa"] = w.current_weights()
    torch.save(results, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_weights_stay_identical_across_ddp_ranks(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0 == r1
    assert r0["dynamic"] != {"emotion": 0.5, "gender": 0.5}
