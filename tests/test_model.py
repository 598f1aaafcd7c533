"""The network: shapes, gradients, padding, precision, overfitting, configuration."""

import dataclasses
import os

import pytest
import torch
import torch.nn.functional as F

from avemotion.config import ParamsError, build
from avemotion.model import AVEmotionNet, ModelConfig, build_model, make_backbone

# The paper's architecture at toy sizes: 1 s at 800 Hz and 10 fps = 10 steps of
# 80 samples, 40 after pooling, 2 channels after the channel pool -> 80 features.
TINY = ModelConfig(
    sample_rate=800,
    seconds=1.0,
    fps=10.0,
    conv1_filters=4,
    conv1_width=9,
    conv2_filters=4,
    conv2_width=50,
    channel_pool=2,
    visual_backbone="mobilenet_v3_small",
    lstm_hidden=16,
)
PX = 32
VARIANTS = [("audio", "video"), ("audio",), ("video",)]


def tiny(**overrides) -> ModelConfig:
    return dataclasses.replace(TINY, **overrides)


def batch(cfg: ModelConfig, B: int = 3, seed: int = 0, steps=None):
    g = torch.Generator().manual_seed(seed)
    audio = (torch.randn(B, cfg.n_samples, generator=g) * 3000).to(torch.int16)
    faces = torch.randint(0, 256, (B, cfg.n_steps, PX, PX, 3), generator=g, dtype=torch.uint8)
    if steps is None:
        steps = torch.randint(2, cfg.n_steps + 1, (B,), generator=g)
        steps[0] = cfg.n_steps
    return audio, faces, torch.as_tensor(steps)


def labels(B: int, n_emotions: int = 4):
    return torch.arange(B) % n_emotions, torch.arange(B) % 2


@pytest.mark.parametrize("modalities", VARIANTS)
def test_output_shapes(modalities):
    cfg = tiny(modalities=modalities, n_emotions=5)
    model = build_model(cfg).eval()
    audio, faces, steps = batch(cfg, B=3)
    out = model(audio if "audio" in modalities else None, faces if "video" in modalities else None, steps)
    assert set(out) == {"emotion", "gender"}
    assert out["emotion"].shape == (3, 5) and out["gender"].shape == (3, 2)
    assert (model.audio is None) == ("audio" not in modalities)
    assert (model.visual is None) == ("video" not in modalities)


def test_paper_sizes():
    cfg = ModelConfig()
    assert (cfg.samples_per_frame, cfg.samples_per_step, cfg.audio_features) == (640, 320, 1280)
    assert (cfg.n_steps, cfg.n_samples, cfg.visual_features) == (150, 96000, 2048)
    model = AVEmotionNet(cfg)
    assert model.lstm.input_size == 1280 + 2048 and model.lstm.hidden_size == 256
    assert model.lstm.num_layers == 2 and model.drop.p == 0.5
    assert model.lstm.dropout == 0.0  # the paper: dropout only before the heads
    assert model.audio.conv2.weight.shape == (40, 40, 4000)


def test_dropout_between_lstm_layers_is_its_own_param():
    model = build_model(tiny(lstm_layers=2, dropout=0.3, lstm_dropout=0.2))
    assert model.lstm.dropout == 0.2 and model.drop.p == 0.3
    assert build_model(tiny(lstm_layers=1, lstm_dropout=0.2)).lstm.dropout == 0.0  # one layer: nothing between
    with pytest.raises(ValueError, match="model.lstm_dropout must be in"):
        build(ModelConfig, {"model": {"lstm_dropout": 1.0}}, "model")


@pytest.mark.parametrize("modalities", VARIANTS)
def test_every_parameter_gets_a_gradient_and_nothing_is_nan(modalities):
    torch.manual_seed(0)
    cfg = tiny(modalities=modalities)
    model = build_model(cfg).train()
    audio, faces, steps = batch(cfg, B=4)
    out = model(audio, faces, steps)
    y_e, y_g = labels(4)
    loss = F.cross_entropy(out["emotion"], y_e) + F.cross_entropy(out["gender"], y_g)
    loss.backward()
    assert all(torch.isfinite(v).all() for v in out.values())
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


def test_padding_content_does_not_matter_and_batching_does_not_either():
    torch.manual_seed(0)
    # ResNet: a freshly initialised MobileNetV3 in eval mode outputs ~1e-8 everywhere
    cfg = tiny(visual_backbone="resnet18")
    model = build_model(cfg).eval()
    audio, faces, steps = batch(cfg, B=3, steps=[10, 4, 7])
    ref = model(audio, faces, steps)

    # garbage where the reader would have put zeros
    noisy_audio, noisy_faces = audio.clone(), faces.clone()
    for b, n in enumerate(steps.tolist()):
        noisy_audio[b, n * cfg.samples_per_frame :] = 12345
        noisy_faces[b, n:] = 255
    out = model(noisy_audio, noisy_faces, steps)
    for task in ref:
        torch.testing.assert_close(out[task], ref[task], atol=1e-5, rtol=1e-5)
    # (while the same change to a valid frame or sample does matter)
    noisy_faces[1, 3], noisy_audio[2, 0] = 255, 12345
    changed = model(noisy_audio, noisy_faces, steps)["emotion"]
    assert not torch.allclose(changed[1], ref["emotion"][1], atol=1e-4)
    assert not torch.allclose(changed[2], ref["emotion"][2], atol=1e-4)

    # an utterance alone (cropped to its own length) = the same utterance in the batch
    n = int(steps[1])
    alone = model(audio[1:2, : n * cfg.samples_per_frame], faces[1:2, :n], steps[1:2])
    for task in ref:
        torch.testing.assert_close(alone[task], ref[task][1:2], atol=1e-5, rtol=1e-5)


def test_last_step_pooling_reads_the_last_valid_step():
    torch.manual_seed(0)
    model = build_model(tiny(modalities=("audio",))).eval()
    audio, faces, steps = batch(model.cfg, B=2, steps=[10, 6])
    x = model.forward_features(audio, None, steps)  # (B, T, H)
    h = model.forward_head(x, steps, pre_logits=True)
    torch.testing.assert_close(h, torch.stack([x[0, 9], x[1, 5]]))


def test_mean_pooling_averages_valid_steps_only():
    torch.manual_seed(0)
    model = build_model(tiny(modalities=("audio",), pooling="mean")).eval()
    audio, _, steps = batch(model.cfg, B=2, steps=[10, 6])
    x = model.forward_features(audio, None, steps)
    h = model.forward_head(x, steps, pre_logits=True)
    torch.testing.assert_close(h, torch.stack([x[0].mean(0), x[1, :6].mean(0)]))


def test_direct_and_fft_audio_convolutions_agree():
    torch.manual_seed(0)
    direct = build_model(tiny(modalities=("audio",), audio_conv="direct")).eval()
    fft = build_model(tiny(modalities=("audio",), audio_conv="fft")).eval()
    fft.load_state_dict(direct.state_dict())
    audio, _, steps = batch(direct.cfg)
    a, b = direct(audio, None, steps), fft(audio, None, steps)
    for task in a:
        torch.testing.assert_close(a[task], b[task], atol=1e-4, rtol=1e-4)


def test_audio_is_standardised_per_utterance():
    from avemotion.model import normalise_audio

    audio = torch.zeros(2, 1000, dtype=torch.int16)
    audio[0, :600] = (torch.randn(600) * 100).to(torch.int16)
    audio[1] = (torch.randn(1000) * 10000).to(torch.int16)
    x = normalise_audio(audio, torch.tensor([600, 1000]), "standardize")
    assert x[0, 600:].abs().max() == 0  # padding stays silent
    torch.testing.assert_close(x[0, :600].std(unbiased=False), torch.tensor(1.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(x[1].std(unbiased=False), torch.tensor(1.0), atol=1e-4, rtol=0)
    silent = normalise_audio(torch.zeros(1, 10, dtype=torch.int16), torch.tensor([10]), "standardize")
    assert torch.isfinite(silent).all()


def test_paper_code_normalisation_is_the_authors_fixed_gain():
    from avemotion.model import PAPER_CODE_MEAN, PAPER_CODE_VARIANCE, normalise_audio

    assert (PAPER_CODE_MEAN, PAPER_CODE_VARIANCE) == (-4.18e-5, 0.00342)
    audio = torch.zeros(2, 1000, dtype=torch.int16)
    audio[0, :600] = (torch.randn(600) * 100).to(torch.int16)
    audio[1] = (torch.randn(1000) * 10000).to(torch.int16)
    x = normalise_audio(audio, torch.tensor([600, 1000]), "paper_code")
    want = (audio.double() / 32768 - PAPER_CODE_MEAN) / PAPER_CODE_VARIANCE
    torch.testing.assert_close(x[1].double(), want[1], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(x[0, :600].double(), want[0, :600], rtol=1e-5, atol=1e-4)
    assert x[0, 600:].abs().max() == 0  # padding stays silent
    # a fixed gain: a quiet and a loud utterance keep their level ratio (no per-utterance scaling)
    assert x[1].std() / x[0, :600].std() > 50


def test_forward_and_backward_under_bf16_autocast_on_cpu():
    torch.manual_seed(0)
    cfg = tiny()
    model = build_model(cfg).train()
    audio, faces, steps = batch(cfg, B=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(audio, faces, steps)
        y_e, y_g = labels(3)
        loss = F.cross_entropy(out["emotion"], y_e) + F.cross_entropy(out["gender"], y_g)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_a_few_samples_can_be_overfitted():
    # Asserts what holds on any CPU: other CPUs take other kernel paths, so the exact
    # loss after n steps differs between machines; a tenth of the start and every
    # training sample right are reached with a wide margin (here after ~25 of 80 steps).
    torch.manual_seed(0)
    cfg = tiny(dropout=0.0)
    model = build_model(cfg).train()
    audio, faces, steps = batch(cfg, B=4, seed=1)
    y_e, y_g = labels(4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = None
    for _ in range(80):
        out = model(audio, faces, steps)
        loss = F.cross_entropy(out["emotion"], y_e) + F.cross_entropy(out["gender"], y_g)
        start = loss.item() if start is None else start
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * start
    assert out["emotion"].argmax(1).tolist() == y_e.tolist()
    assert out["gender"].argmax(1).tolist() == y_g.tolist()


def test_last_shared_parameters_are_the_top_lstm_layer():
    model = build_model(tiny(lstm_layers=3))
    assert [p.shape for p in model.last_shared_parameters()] == [(64, 16), (64, 16)]
    assert model.last_shared_parameters()[0] is model.lstm.weight_ih_l2


def test_config_from_params_and_its_errors():
    cfg = build(ModelConfig, {"model": {"visual_backbone": "resnet18", "pooling": "mean"}}, "model")
    assert cfg.visual_backbone == "resnet18" and cfg.conv2_width == 4000
    with pytest.raises(ParamsError, match="valid keys"):
        build(ModelConfig, {"model": {"conv2_widht": 400}}, "model")
    with pytest.raises(ParamsError, match="'auto', 'direct', 'fft'"):
        build(ModelConfig, {"model": {"audio_conv": "fast"}}, "model")
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50, mobilenet_v3_small"):
        ModelConfig(visual_backbone="vgg16")
    with pytest.raises(ValueError, match="whole number"):
        ModelConfig(fps=24.0)
    with pytest.raises(ValueError, match="audio, video"):
        ModelConfig(modalities=("audio", "text"))
    with pytest.raises(ValueError, match="multiple of channel_pool"):
        ModelConfig(conv2_filters=45)


def test_input_errors_are_clear():
    cfg = tiny()
    model = build_model(cfg)
    audio, faces, steps = batch(cfg)
    with pytest.raises(ValueError, match="audio is None"):
        model(None, faces, steps)
    with pytest.raises(ValueError, match="1..10"):
        model(audio, faces, steps + 10)
    with pytest.raises(ValueError, match="multiple of 80"):
        model(audio[:, :-1], faces, steps)
    with pytest.raises(ValueError, match="disagree"):
        model(audio, faces[:, :5], steps.clamp(max=5))


def test_imagenet_weights_come_from_the_local_cache_only(tmp_path):
    hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(FileNotFoundError, match=str(tmp_path / "checkpoints" / "mobilenet_v3_small-047dcff4.pth")):
            make_backbone("mobilenet_v3_small", "imagenet")
        # a file placed there (here: random weights with the classifier) is used
        import torchvision

        source = torchvision.models.mobilenet_v3_small()
        (tmp_path / "checkpoints").mkdir()
        torch.save(source.state_dict(), tmp_path / "checkpoints" / "mobilenet_v3_small-047dcff4.pth")
        net = make_backbone("mobilenet_v3_small", "imagenet")
        torch.testing.assert_close(net.features[0][0].weight, source.features[0][0].weight)
    finally:
        torch.hub.set_dir(hub)


def test_visual_weights_from_a_file(tmp_path):
    source = make_backbone("mobilenet_v3_small")
    path = tmp_path / "backbone.pt"
    torch.save(source.state_dict(), path)
    net = make_backbone("mobilenet_v3_small", str(path))
    torch.testing.assert_close(net.features[0][0].weight, source.features[0][0].weight)
    with pytest.raises(ValueError, match="none, imagenet or the path"):
        make_backbone("mobilenet_v3_small", str(tmp_path / "missing.pt"))
    torch.save(make_backbone("resnet18").state_dict(), path)
    with pytest.raises(ValueError, match="do not fit"):
        make_backbone("mobilenet_v3_small", str(path))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_channels_last():
    torch.manual_seed(0)
    cfg = tiny()
    model = build_model(cfg).cuda().train()
    audio, faces, steps = (t.cuda() for t in batch(cfg))
    conv = model.visual.backbone.features[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(audio, faces, steps)
        y_e, y_g = (t.cuda() for t in labels(3))
        loss = F.cross_entropy(out["emotion"], y_e) + F.cross_entropy(out["gender"], y_g)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
