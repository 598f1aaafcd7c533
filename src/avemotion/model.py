"""The network of Chae et al. 2018: raw-audio CNN + per-frame ResNet, fused per step, LSTM.

    audio (B, S) int16 --normalise--> conv 40x80 -> max-pool 2 -> conv 40x4000
        -> max-pool 10 across channels -> cut into T steps      (B, T, 1280)
    faces (B, T, H, W, 3) uint8 --> ResNet-50 without classifier  (B, T, 2048)
    concat per step (B, T, 3328) -> 2-layer LSTM 256 -> dropout -> heads at the last
    valid step -> {"emotion": (B, n_emotions), "gender": (B, 2)}

Unimodal variants are the same class with one stream switched off (`modalities`).
Inputs arrive as the reader stores them (int16 audio, uint8 RGB frames, channels
last) and are converted here, on whatever device the model lives on.

Padding: `steps` gives each utterance's number of valid steps. The LSTM runs
unpacked over the padded batch and the heads read step `steps - 1` (or the mean of
the valid steps): a unidirectional LSTM's output at a valid step depends only on
earlier steps, so this equals packing without packing's host-side lengths and
sort. Padded frames never enter the visual backbone (only valid frames are
gathered, which also keeps black padding out of the BatchNorm statistics), and
padded audio is zeroed after normalisation and again before the wide convolution,
so neither garbage in the padding nor the batch's other utterances can change an
utterance's output: each is computed as if alone and zero-padded at its own end.
The batch is cropped to its longest utterance first.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torchvision
from torch import Tensor

from avemotion.audioconv import AudioConv1d

log = logging.getLogger(__name__)

MODALITIES: tuple[str, ...] = ("audio", "video")
AUDIO_NORMS: tuple[str, ...] = ("standardize", "paper_code", "none")

# The authors' code: (x - m) / v on the [-1, 1] waveform with these corpus-wide
# constants, v being a variance (not a standard deviation): a fixed gain of ~292.
PAPER_CODE_MEAN = -4.18e-5
PAPER_CODE_VARIANCE = 0.00342

# torchvision backbones with their classifier attribute and feature width; the
# classifier is replaced by Identity, which leaves the globally pooled features.
BACKBONES: dict[str, tuple[str, int]] = {
    "resnet18": ("fc", 512),
    "resnet34": ("fc", 512),
    "resnet50": ("fc", 2048),
    "mobilenet_v3_small": ("classifier", 576),
    "mobilenet_v3_large": ("classifier", 960),
}

# ImageNet statistics the torchvision weights were trained with. Applied whatever
# `visual_weights` is, so a checkpoint trained from scratch and one fine-tuned
# from ImageNet see the same input scale.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture; defaults are the paper's. Built from params.yaml section `model`.

    `modalities`, `n_emotions`, `sample_rate`, `seconds` and `fps` describe the data
    and are filled in by the training code from the data sections.

    audio_norm: how the waveform (x in [-1, 1], valid samples only) is scaled.
      standardize (default): (x - mean) / std per utterance, over its valid samples.
        The paper does not say. Standardising removes gain differences between
        sessions and microphones and gives the 4,000-tap filters unit-variance input;
        kept as the default because it does not depend on the recording level.
      paper_code: (x - m) / v with the authors' corpus-wide constants
        m = PAPER_CODE_MEAN = -4.18e-5 and v = PAPER_CODE_VARIANCE = 0.00342 (a
        variance used as a divisor, not a standard deviation): the same fixed gain of
        about 292 for every utterance, not a per-utterance normalisation.
      none: x / 32768 only.
    audio_conv: auto (FFT for wide filters, see audioconv.choose_impl) | direct | fft.
    visual_weights: none | imagenet (from the local torch cache only) | a file path.
    pooling: last (the authors' code: last valid step) | mean (over valid steps).
    dropout: on the LSTM output before the heads (the paper's only dropout).
    lstm_dropout: between stacked LSTM layers (PyTorch's LSTM `dropout`). The paper
      and the authors' code have none there (0.0, the default).
    """

    modalities: tuple[str, ...] = MODALITIES
    n_emotions: int = 4
    sample_rate: int = 16000
    seconds: float = 6.0
    fps: float = 25.0
    audio_norm: Literal["standardize", "paper_code", "none"] = "standardize"
    audio_conv: Literal["auto", "direct", "fft"] = "auto"
    conv1_filters: int = 40
    conv1_width: int = 80
    pool: int = 2
    conv2_filters: int = 40
    conv2_width: int = 4000
    channel_pool: int = 10
    visual_backbone: str = "resnet50"
    visual_weights: str = "none"
    lstm_hidden: int = 256
    lstm_layers: int = 2
    dropout: float = 0.5
    lstm_dropout: float = 0.0
    pooling: Literal["last", "mean"] = "last"

    def __post_init__(self):
        self.validate()

    def validate(self, where: str = "model") -> None:
        """Raise ValueError naming the key and the valid choices when inconsistent."""
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(
                f"{where}.modalities is {list(self.modalities)}; use one or both of "
                f"{', '.join(MODALITIES)}, each at most once"
            )
        if self.audio_norm not in AUDIO_NORMS:
            raise ValueError(
                f"Invalid {where}.audio_norm {self.audio_norm!r}. "
                f"Only {', '.join(AUDIO_NORMS)} are supported."
            )
        if self.visual_backbone not in BACKBONES:
            raise ValueError(
                f"Invalid {where}.visual_backbone {self.visual_backbone!r}. "
                f"Only {', '.join(BACKBONES)} are supported."
            )
        if self.pooling not in ("last", "mean"):
            raise ValueError(f"Invalid {where}.pooling {self.pooling!r}. Only last, mean are supported.")
        for name in ("n_emotions", "sample_rate", "conv1_filters", "conv1_width", "pool",
                     "conv2_filters", "conv2_width", "channel_pool", "lstm_hidden", "lstm_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{where}.{name} must be at least 1, got {getattr(self, name)}")
        if self.n_emotions < 2:
            raise ValueError(f"{where}.n_emotions must be at least 2, got {self.n_emotions}")
        for name in ("dropout", "lstm_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{where}.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.fps <= 0 or self.seconds <= 0:
            raise ValueError(f"{where}: fps and seconds must be positive, got {self.fps}, {self.seconds}")
        per_frame = self.sample_rate / self.fps
        if not _whole(per_frame):
            raise ValueError(
                f"{where}: sample_rate / fps = {self.sample_rate} / {self.fps} = {per_frame:g} "
                f"audio samples per video frame; it must be a whole number so that audio "
                f"steps align with frames (e.g. fps 25, 20, 10 or 5 at 16 kHz)"
            )
        if round(per_frame) % self.pool:
            raise ValueError(
                f"{where}: {round(per_frame)} samples per frame do not divide by pool={self.pool}"
            )
        if not _whole(self.seconds * self.fps):
            raise ValueError(
                f"{where}: seconds * fps = {self.seconds} * {self.fps} must be a whole number of frames"
            )
        if self.conv2_filters % self.channel_pool:
            raise ValueError(
                f"{where}: conv2_filters={self.conv2_filters} must be a multiple of "
                f"channel_pool={self.channel_pool}"
            )

    # Derived sizes. Paper: 640 samples per frame, 320 per step after pooling,
    # 4 channels after the channel pool, 1,280 audio features per step, 150 steps.
    @property
    def samples_per_frame(self) -> int:
        return round(self.sample_rate / self.fps)

    @property
    def samples_per_step(self) -> int:
        return self.samples_per_frame // self.pool

    @property
    def audio_features(self) -> int:
        return self.samples_per_step * (self.conv2_filters // self.channel_pool)

    @property
    def visual_features(self) -> int:
        return BACKBONES[self.visual_backbone][1]

    @property
    def n_steps(self) -> int:
        return round(self.seconds * self.fps)

    @property
    def n_samples(self) -> int:
        return round(self.seconds * self.sample_rate)


def _whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-9 * max(1.0, abs(x))


class AudioStream(nn.Module):
    """Raw waveform -> per-step features (B, T, audio_features).

    No activation function, as in the authors' code: the two max-pools (in time,
    then across channels, a maxout) are the non-linearities.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = cfg.audio_norm
        self.per_frame = cfg.samples_per_frame
        self.per_step = cfg.samples_per_step
        self.channel_pool = cfg.channel_pool
        self.conv1 = AudioConv1d(1, cfg.conv1_filters, cfg.conv1_width, impl=cfg.audio_conv)
        self.pool = nn.MaxPool1d(cfg.pool)
        self.conv2 = AudioConv1d(cfg.conv1_filters, cfg.conv2_filters, cfg.conv2_width, impl=cfg.audio_conv)
        self.out_features = cfg.audio_features

    def forward(self, audio: Tensor, steps: Tensor) -> Tensor:
        B, S = audio.shape
        T = S // self.per_frame
        x = normalise_audio(audio, steps * self.per_frame, self.norm)  # (B, S) float32
        x = self.conv1(x[:, None])  # (B, C1, S)
        x = self.pool(x)  # (B, C1, S / pool)
        # conv1 turns the zero padding into its bias; zero it again so that conv2 sees
        # each utterance zero-padded at its own end, whatever the batch's length
        keep = torch.arange(x.shape[-1], device=x.device) < (steps * self.per_step)[:, None]  # (B, S / pool)
        x = x * keep[:, None]  # (B, C1, S / pool)
        x = self.conv2(x)  # (B, C2, S / pool)
        C = x.shape[1] // self.channel_pool
        x = x.view(B, C, self.channel_pool, -1).amax(dim=2)  # (B, C, S / pool)
        # step t holds samples [t * per_step, (t + 1) * per_step) of every channel
        x = x.view(B, C, T, self.per_step).transpose(1, 2)  # (B, T, C, per_step)
        return x.reshape(B, T, C * self.per_step)  # (B, T, audio_features)


def normalise_audio(audio: Tensor, valid: Tensor, norm: str) -> Tensor:
    """int16 (or float in [-1, 1]) waveforms (B, S) -> float32, normalised (ModelConfig.audio_norm).

    `standardize` uses statistics of the first `valid[b]` samples only, so zero padding
    does not shrink the variance of short utterances; `paper_code` applies the authors'
    fixed corpus-wide constants. The padding is zero again afterwards in every case.
    """
    x = audio.float()  # (B, S)
    if audio.dtype == torch.int16:
        x = x / 32768.0
    keep = torch.arange(x.shape[1], device=x.device) < valid[:, None]  # (B, S)
    x = x * keep
    if norm == "none":
        return x
    if norm == "paper_code":
        return (x - PAPER_CODE_MEAN) / PAPER_CODE_VARIANCE * keep  # (B, S)
    n = keep.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
    mean = x.sum(dim=1, keepdim=True) / n  # (B, 1)
    var = (((x - mean) * keep) ** 2).sum(dim=1, keepdim=True) / n  # (B, 1)
    # floor at ~1 LSB of int16 so a silent utterance stays finite (and silent)
    var = var.clamp(min=1e-9)
    return (x - mean) / var.sqrt() * keep  # (B, S)


class VisualStream(nn.Module):
    """Face frames (B, T, H, W, 3) uint8 -> per-frame features (B, T, D).

    Channels last in memory throughout (the reader's layout is already NHWC, and
    cuDNN and oneDNN both run these backbones faster that way; measured on CPU
    here too: ResNet-50 96 px 13%, MobileNetV3-small 48 px 2.6x).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.backbone = make_backbone(cfg.visual_backbone, cfg.visual_weights)
        self.backbone.to(memory_format=torch.channels_last)
        self.out_features = cfg.visual_features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, faces: Tensor, steps: Tensor) -> Tensor:
        B, T = faces.shape[:2]
        valid = torch.arange(T, device=faces.device) < steps[:, None]  # (B, T)
        frames = faces[valid]  # (N, H, W, 3), valid frames only
        x = frames.permute(0, 3, 1, 2)  # (N, 3, H, W), channels-last strides
        x = x.float() / 255.0 if frames.dtype == torch.uint8 else x.float()
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        feats = self.backbone(x)  # (N, D)
        out = feats.new_zeros(B, T, feats.shape[-1])  # (B, T, D)
        out[valid] = feats
        return out


def make_backbone(name: str, weights: str = "none") -> nn.Module:
    """A torchvision backbone without its classifier: (N, 3, H, W) -> (N, D)."""
    if name not in BACKBONES:
        raise ValueError(f"Invalid visual backbone {name!r}. Only {', '.join(BACKBONES)} are supported.")
    attr, _ = BACKBONES[name]
    net = torchvision.models.get_model(name, weights=None)
    setattr(net, attr, nn.Identity())
    if weights != "none":
        state = _visual_state_dict(name, weights)
        state = {k: v for k, v in state.items() if not k.startswith(attr + ".")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"visual_weights {weights!r} do not fit {name}: missing keys {missing[:5]}, "
                f"unexpected keys {unexpected[:5]} (expected a torchvision {name} state dict)"
            )
    return net


def _visual_state_dict(name: str, weights: str) -> dict[str, Tensor]:
    if weights == "imagenet":
        # V1 everywhere: the original ImageNet recipe, as available in 2018.
        entry = torchvision.models.get_model_weights(name).IMAGENET1K_V1
        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(entry.url))
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"visual_weights 'imagenet': {path} not found. Training never downloads; "
                f"fetch the file once on a machine with internet, e.g. "
                f"python -c \"import torchvision; torchvision.models.get_model('{name}', "
                f"weights='IMAGENET1K_V1')\" (which stores it under torch.hub.get_dir()/"
                f"checkpoints, set by $TORCH_HOME), or download {entry.url} to {path}; "
                f"or set model.visual_weights to none or to a state-dict file."
            )
        return torch.load(path, map_location="cpu", weights_only=True)
    if not os.path.isfile(weights):
        raise ValueError(
            f"Invalid visual_weights {weights!r}. Only none, imagenet or the path of an "
            f"existing torchvision state-dict file are supported."
        )
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a training checkpoint holding the backbone alone
    return state


class AVEmotionNet(nn.Module):
    """Audio-visual emotion + gender network; a stream is None when switched off."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.audio = AudioStream(cfg) if "audio" in cfg.modalities else None
        self.visual = VisualStream(cfg) if "video" in cfg.modalities else None
        in_features = sum(s.out_features for s in (self.audio, self.visual) if s is not None)
        self.lstm = nn.LSTM(
            in_features,
            cfg.lstm_hidden,
            num_layers=cfg.lstm_layers,
            batch_first=True,
            dropout=cfg.lstm_dropout if cfg.lstm_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.emotion_head = nn.Linear(cfg.lstm_hidden, cfg.n_emotions)
        self.gender_head = nn.Linear(cfg.lstm_hidden, 2)
        self._init_lstm()

    def _init_lstm(self) -> None:
        # the paper: "normalized initialization" (Glorot & Bengio) for the LSTM weights
        for name, p in self.lstm.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(p)
            else:
                nn.init.zeros_(p)

    def forward(self, audio: Tensor | None, faces: Tensor | None, steps: Tensor) -> dict[str, Tensor]:
        """audio (B, S) int16, faces (B, T, H, W, 3) uint8, steps (B,) int64 -> logits.

        Inputs of a switched-off stream are ignored (None is fine).
        """
        steps = steps.to(self.emotion_head.weight.device)
        return self.forward_head(self.forward_features(audio, faces, steps), steps)

    def forward_features(self, audio: Tensor | None, faces: Tensor | None, steps: Tensor) -> Tensor:
        """LSTM outputs (B, T', lstm_hidden), T' = the longest utterance in the batch."""
        t_max = self._check_inputs(audio, faces, steps)
        parts = []
        if self.audio is not None:
            audio = audio[:, : t_max * self.cfg.samples_per_frame]  # (B, S')
            parts.append(self.audio(audio, steps))  # (B, T', audio_features)
        if self.visual is not None:
            parts.append(self.visual(faces[:, :t_max], steps))  # (B, T', visual_features)
        x = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]  # (B, T', F)
        x, _ = self.lstm(x)  # (B, T', H)
        return x

    def forward_head(self, x: Tensor, steps: Tensor, pre_logits: bool = False):
        """Pool the valid steps of x (B, T', H), dropout, heads; `pre_logits` stops before."""
        B, T, _ = x.shape
        if self.cfg.pooling == "last":
            h = x[torch.arange(B, device=x.device), steps - 1]  # (B, H)
        else:
            keep = torch.arange(T, device=x.device) < steps[:, None]  # (B, T')
            h = (x * keep[..., None]).sum(dim=1) / steps[:, None].to(x.dtype)  # (B, H)
        h = self.drop(h)
        if pre_logits:
            return h
        return {"emotion": self.emotion_head(h), "gender": self.gender_head(h)}  # (B, E), (B, 2)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weights of the last layer shared by both tasks (top LSTM layer), for GradNorm."""
        top = self.cfg.lstm_layers - 1
        return [getattr(self.lstm, f"weight_ih_l{top}"), getattr(self.lstm, f"weight_hh_l{top}")]

    def _check_inputs(self, audio: Tensor | None, faces: Tensor | None, steps: Tensor) -> int:
        """Validate shapes; returns the longest utterance in steps (one host sync)."""
        cfg = self.cfg
        lengths: dict[str, int] = {}
        if self.audio is not None:
            if audio is None:
                raise ValueError(f"model has an audio stream (modalities={list(cfg.modalities)}) but audio is None")
            if audio.dim() != 2 or audio.shape[1] % cfg.samples_per_frame:
                raise ValueError(
                    f"audio must be (B, S) with S a multiple of {cfg.samples_per_frame} samples "
                    f"per frame (sample_rate / fps), got {tuple(audio.shape)}"
                )
            lengths["audio"] = audio.shape[1] // cfg.samples_per_frame
        if self.visual is not None:
            if faces is None:
                raise ValueError(f"model has a video stream (modalities={list(cfg.modalities)}) but faces is None")
            if faces.dim() != 5 or faces.shape[-1] != 3:
                raise ValueError(f"faces must be (B, T, H, W, 3) RGB, got {tuple(faces.shape)}")
            lengths["video"] = faces.shape[1]
        if len(set(lengths.values())) > 1:
            raise ValueError(f"audio and video disagree on the number of steps: {lengths}")
        T = next(iter(lengths.values()))
        if steps.dim() != 1 or steps.dtype.is_floating_point:
            raise ValueError(f"steps must be an integer tensor (B,), got {steps.dtype} {tuple(steps.shape)}")
        lo, hi = torch.stack(torch.aminmax(steps)).tolist() if steps.numel() else (1, 1)
        if lo < 1 or hi > T:
            raise ValueError(f"steps must lie in 1..{T} (the padded length), got {lo}..{hi}")
        return hi


def build_model(cfg: ModelConfig) -> AVEmotionNet:
    """The network for `cfg`, with visual weights loaded as `cfg.visual_weights` says."""
    model = AVEmotionNet(cfg)
    n = sum(p.numel() for p in model.parameters())
    log.info("model: %s, %s, %.1fM parameters", "+".join(cfg.modalities), cfg.visual_backbone, n / 1e6)
    return model

