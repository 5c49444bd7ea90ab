"""The image is what it promises: Python, torch, torchaudio and the CUDA build torch was made for."""

from __future__ import annotations

import sys

from conftest import promised


def test_python_version(expected):
    want = promised(expected.python, "Python version")
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert have == want, f"Python {have} runs, the image promises {want}: the venv was made with the wrong interpreter"


def test_torch_version(torch, expected):
    want = promised(expected.torch, "torch version")
    assert torch.__version__.split("+")[0] == want, f"torch {torch.__version__} installed, the image promises {want}"


def test_torchaudio_version(torchaudio, expected):
    want = promised(expected.torchaudio, "torchaudio version")
    assert torchaudio.__version__.split("+")[0] == want, f"torchaudio {torchaudio.__version__} installed, the image promises {want}"


def test_torch_cuda_build(torch, expected, record_testsuite_property):
    want = promised(expected.cuda, "CUDA version")
    record_testsuite_property("torch.version", torch.__version__)
    record_testsuite_property("torch.cuda", str(torch.version.cuda))
    assert torch.version.cuda is not None, f"torch {torch.__version__} is a CPU-only build; the image promises CUDA {want}"
    assert torch.version.cuda == want, (
        f"torch was built for CUDA {torch.version.cuda}, the image promises CUDA {want} (wrong wheel channel?)"
    )


def test_cudnn_loads(torch, record_testsuite_property):
    # Loads libcudnn from the nvidia-cudnn wheel even without a GPU: proves the CUDA libraries are there.
    version = torch.backends.cudnn.version()
    assert version is not None, "cuDNN does not load: the nvidia-* wheels torch needs are missing or broken"
    record_testsuite_property("torch.cudnn", str(version))
