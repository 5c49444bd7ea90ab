"""The tracking extension's own promises, run inside the image after its parent's smoke suite:
event files can be written where the image says, and git (for run provenance) works."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import torch
from tensorboardX import SummaryWriter
from tensorboardX.proto import event_pb2


def _records(path: Path) -> list[bytes]:
    """TFRecord framing: length (u64), its crc (u32), data, the data's crc (u32)."""
    data, records, at = path.read_bytes(), [], 0
    while at < len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        records.append(data[at + 12 : at + 12 + length])
        at += 12 + length + 4
    return records


def test_scalars_written_to_the_log_folder_read_back():
    logdir = Path(os.environ["TRACKING_LOGDIR"])
    assert os.access(logdir, os.W_OK), f"{logdir} is not writable by uid {os.getuid()}"
    run = logdir / f"smoke-{os.getpid()}"
    with SummaryWriter(str(run)) as writer:
        for step in range(3):
            writer.add_scalar("loss", torch.tensor(1.0 / (step + 1)).item(), step)
    (events,) = run.glob("events.out.tfevents.*")
    scalars = []
    for record in _records(events):
        event = event_pb2.Event.FromString(record)
        scalars += [(event.step, round(v.simple_value, 4)) for v in event.summary.value if v.tag == "loss"]
    assert scalars == [(0, 1.0), (1, 0.5), (2, 0.3333)]


def test_git_runs_for_run_provenance(tmp_path):
    out = subprocess.run(["git", "init", "-q", str(tmp_path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / ".git").is_dir()
