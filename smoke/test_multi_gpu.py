"""Several GPUs on one node: a DataParallel forward and training step across all of them."""

from __future__ import annotations

import pytest
from smokelib.audio import AudioCNN


@pytest.fixture(scope="module")
def gpus(torch, gpu):
    count = torch.cuda.device_count()
    if count < 2:
        pytest.skip(f"one GPU visible ({torch.cuda.get_device_name(0)}): multi-GPU checks need two or more")
    return count


def test_data_parallel_forward_and_step(torch, gpus, record):
    torch.manual_seed(0)
    model = AudioCNN().cuda()
    parallel = torch.nn.DataParallel(model)
    x = torch.randn(16 * gpus, 1, 64, 64, device="cuda")
    label = torch.randint(0, 8, (16 * gpus,), device="cuda")
    with torch.inference_mode():
        torch.testing.assert_close(parallel(x), model(x), rtol=1e-2, atol=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(parallel.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(parallel(x), label)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)), "a parameter did not update"
    for i in range(gpus):
        assert torch.cuda.max_memory_allocated(i) > 0, f"GPU {i} took no part"
    record("multi_gpu.count", gpus)
