"""The CPU this runs on, read in one place: its name, a description a reader can place (family, model, vector
units), a signature that keys measurements, and the arithmetic it has (bf16, int8 dot products)."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return CPUINFO.read_text()
    except OSError:  # not Linux, or /proc not mounted
        return ""


def _fields() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty off Linux)."""
    first = _cpuinfo().split("\n\n")[0]
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}


def cpu_flags() -> list[str]:
    return _fields().get("flags", "").split()


def cpu_name() -> str:
    """The CPU's model name (``Intel(R) Xeon(R) Processor``), or what the platform says."""
    return _fields().get("model name") or platform.processor() or platform.machine() or "CPU"


def cpu_description() -> str:
    """This machine's CPU as a reader can place it: cores, name, family and model, and its widest vector units."""
    fields = _fields()
    if not fields:
        return platform.processor() or platform.machine()
    flags = cpu_flags()
    units = "AVX-512 with BF16" if "avx512_bf16" in flags else "AVX-512" if "avx512f" in flags else "AVX2"
    if "amx_bf16" in flags:
        units += " and AMX"
    return (
        f"{_cpuinfo().count('processor')} cores of an {cpu_name()} (family {fields.get('cpu family', '?')}, model "
        f"{fields.get('model', '?')}, {units})"
    )


def cpu_signature() -> str:
    """This CPU (model, instruction flags, cores) and the oneDNN/ATen limits set in the environment: what keys a
    measurement that holds only for this kind of machine."""
    limits = [os.environ.get(k, "") for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")]
    digest = hashlib.sha256(" ".join(cpu_flags()).encode()).hexdigest()[:12]
    return f"{cpu_name() if _fields() else os.uname().machine} | {os.cpu_count()} cores | flags {digest} | " + "/".join(
        limits
    )


def cpu_has_bf16(flags: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX). oneDNN also runs bf16 on plain AVX-512
    (Ice Lake, Cascade Lake) by converting to float32, about half float32's speed there, so its own answer
    (``_is_mkldnn_bf16_supported``) is not enough: the CPU's flags decide where Linux lists them. ``flags``: a
    /proc/cpuinfo text to judge instead of this machine's."""
    text = _cpuinfo() if flags is None else flags
    if "flags" in text:
        return any(f in text.split() for f in ("avx512_bf16", "amx_bf16"))
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_has_vnni() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX)."""
    return any(f in cpu_flags() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
