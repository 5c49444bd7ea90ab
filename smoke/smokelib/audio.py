"""A synthetic, learnable audio task and the classifier the smoke suite trains and times.

The often-copied AudioClassifier example declares fc1 = Linear(64*32*32, 10) after two 2x2 poolings
of a 64x64 patch, which leave 64x16x16: its forward raises. This one is corrected.
"""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn
from torch.utils.data import Dataset

SAMPLE_RATE = 16_000
CLIP = SAMPLE_RATE  # one second
N_MELS = 64
FRAMES = 64
CLASSES = ("low tone", "high tone", "up chirp", "down chirp", "noise burst", "AM tone", "harmonic", "click train")


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def synthesize(label: int, g: torch.Generator) -> torch.Tensor:
    """One second of class ``label``: random frequency, phase, amplitude, onset, duration and noise
    (0-20 dB SNR), with class frequency ranges that overlap, so the model must learn shapes over
    time and harmonics, not one loud frequency."""
    t = torch.arange(CLIP) / SAMPLE_RATE
    phase = _uniform(g, 0, 2 * math.pi)
    if label == 0:
        x = torch.sin(2 * math.pi * _uniform(g, 150, 700) * t + phase)
    elif label == 1:
        x = torch.sin(2 * math.pi * _uniform(g, 700, 3500) * t + phase)
    elif label in (2, 3):
        f0, f1 = _uniform(g, 200, 1200), _uniform(g, 1500, 4000)
        if label == 3:
            f0, f1 = f1, f0
        x = torch.sin(2 * math.pi * (f0 * t + (f1 - f0) * t**2 / 2) + phase)
    elif label == 4:
        x = torch.randn(CLIP, generator=g)
    elif label == 5:
        carrier = torch.sin(2 * math.pi * _uniform(g, 300, 2000) * t + phase)
        x = carrier * (0.5 + 0.5 * torch.sin(2 * math.pi * _uniform(g, 3, 12) * t))
    elif label == 6:
        f = _uniform(g, 100, 400)
        x = sum(torch.sin(2 * math.pi * k * f * t + phase * k) / k for k in range(1, 6))
    else:
        x = torch.zeros(CLIP)
        period = int(SAMPLE_RATE / _uniform(g, 8, 40))
        x[int(_uniform(g, 0, 1) * period) :: period] = 1.0
    # Every class sounds for a random 0.3-1 s stretch of the clip.
    length = int(_uniform(g, 0.3, 1.0) * CLIP)
    start = int(_uniform(g, 0, 1) * (CLIP - length))
    envelope = torch.zeros(CLIP)
    envelope[start : start + length] = 1.0
    x = x * envelope
    x = x / x.abs().max().clamp_min(1e-6) * _uniform(g, 0.1, 1.0)
    snr_db = _uniform(g, 0, 20)
    noise = torch.randn(CLIP, generator=g) * x.pow(2).mean().sqrt() / (10 ** (snr_db / 20))
    return (x + noise).float()


class SyntheticAudio(Dataset):
    """``size`` clips, balanced over the classes, each a pure function of (seed, index)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = index % len(CLASSES)
        return synthesize(label, g), label


class FrontEnd(nn.Module):
    """Waveforms [B, T] → standardised log-mel patches [B, 1, 64, 64]."""

    def __init__(self) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=512, hop_length=CLIP // FRAMES, n_mels=N_MELS)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = (self.mel(wave) + 1e-6).log()[..., :FRAMES]
        spec = (spec - spec.mean(dim=(-2, -1), keepdim=True)) / spec.std(dim=(-2, -1), keepdim=True).clamp_min(1e-5)
        return spec.unsqueeze(1)


class SpecAugment(nn.Module):
    """SpecAugment-style masking for training: random frequency and time bands set to zero."""

    def __init__(self, freq: int = 8, time: int = 8) -> None:
        super().__init__()
        self.freq = torchaudio.transforms.FrequencyMasking(freq, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(time, iid_masks=True)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.time(self.freq(spec)) if self.training else spec


def mask_bands(spec: torch.Tensor, freq: tuple[int, int], time: tuple[int, int]) -> torch.Tensor:
    """The same masking with explicit bands (start, width), so CPU and GPU can be compared exactly."""
    out = spec.clone()
    out[..., freq[0] : freq[0] + freq[1], :] = 0
    out[..., time[0] : time[0] + time[1]] = 0
    return out


class AudioCNN(nn.Module):
    """Two 3x3 conv + 2x2 max-pool blocks on a 1x64x64 log-mel patch; 64x16x16 into the classifier.
    About 40 MFLOP per sample forward."""

    def __init__(self, classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Linear(64 * 16 * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))
