"""One line describing the machine a benchmark ran on (CPU model, cores, threads, torch)."""

from __future__ import annotations

import os
import platform

import torch


def describe_machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = (f"machine: {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
            f"thread(s), torch {torch.__version__}, python {platform.python_version()}")
    if torch.cuda.is_available():
        text += f", cuda: {torch.cuda.get_device_name()}"
    return text
