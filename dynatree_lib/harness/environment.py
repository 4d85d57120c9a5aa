"""Where a run happened and what its file is called: one place for each.

Every results document records :func:`environment` (device, CPU, library versions, dtype,
threads, commit, date); every command names its file with :func:`result_name`, so the
chapters, the README table and the CLI agree on ``main_wikitext2_embedded_cpu.json``.
"""

from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path

import torch


def environment(device: torch.device, dtype: torch.dtype) -> dict:
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = _cpu_model()
    return {"device": str(device), "device_name": device_name, "cpu": _cpu_model(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "dtype": str(dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(), "git_commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def file_part(text: str) -> str:
    """A name inside a file name: ``org/target,org/draft`` -> ``org-target+org-draft``."""
    return text.replace("/", "-").replace(",", "+")


def result_name(*parts: str, suffix: str = "") -> str:
    """The file a command writes: the non-empty ``parts`` (each made file-safe) joined by ``_``,
    then ``suffix`` (a dtype's ``_bfloat16``, ...) and ``.json``.
    ``result_name("main", "wikitext2", "embedded", "cpu")`` -> ``main_wikitext2_embedded_cpu.json``."""
    return "_".join(file_part(p) for p in parts if p) + suffix + ".json"
