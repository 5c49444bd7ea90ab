"""The audio front end: log-mel patches and SpecAugment masking, and the GPU computing what the CPU does."""

from __future__ import annotations

import pytest
from smokelib.audio import CLASSES, FRAMES, N_MELS, FrontEnd, SpecAugment, SyntheticAudio, mask_bands


@pytest.fixture(scope="module")
def waves(torch):
    data = SyntheticAudio(len(CLASSES) * 2, seed=7)
    return torch.stack([data[i][0] for i in range(len(data))])


def test_front_end_gives_standardised_log_mel_patches(torch, waves, cpu):
    spec = FrontEnd().to(cpu)(waves)
    assert spec.shape == (len(waves), 1, N_MELS, FRAMES)
    assert torch.isfinite(spec).all()
    torch.testing.assert_close(spec.mean(dim=(-2, -1)), torch.zeros(len(waves), 1), atol=1e-4, rtol=0)


def test_spec_augment_masks_bands_in_training_only(torch, waves):
    spec = FrontEnd()(waves)
    augment = SpecAugment(freq=8, time=8).train()
    torch.manual_seed(0)
    masked = augment(spec)
    assert (masked == 0).any(dim=-1).any() or (masked == 0).any(dim=-2).any(), "no band was masked"
    assert torch.equal(augment.eval()(spec), spec), "masking must be off in eval mode"
    fixed = mask_bands(spec, freq=(10, 5), time=(20, 7))
    assert (fixed[..., 10:15, :] == 0).all() and (fixed[..., 20:27] == 0).all()
    assert torch.equal(fixed[..., :10, :20], spec[..., :10, :20])


def test_gpu_front_end_matches_cpu(torch, waves, gpu, cpu):
    on_cpu = mask_bands(FrontEnd().to(cpu)(waves), freq=(10, 5), time=(20, 7))
    on_gpu = mask_bands(FrontEnd().to(gpu)(waves.to(gpu)), freq=(10, 5), time=(20, 7))
    assert on_gpu.device.type == "cuda"
    # float32 FFTs differ in the last bits between cuFFT and the CPU's; standardised log-mel values
    # are O(1), so an absolute 1e-3 is a float32-sized tolerance.
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-3, atol=1e-3)
