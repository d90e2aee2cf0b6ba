"""The hardware the recipe runs on: which precision trains fastest there, and the device's peak FLOP/s (for MFU).

Standalone: standard library only at module top (torch lazily), nothing from azft.

Peak FLOP/s is the dense arithmetic peak of the devices the run uses:

* CPU: physical cores × clock × FLOPs per cycle per core for the widest unit this CPU has for the dtype (read from
  the ``flags`` of ``/proc/cpuinfo``). The clock is ``cpuinfo_max_freq`` from sysfs when the kernel exposes it,
  otherwise the ``cpu MHz`` of ``/proc/cpuinfo`` (on cloud VMs that is the nominal clock).
* GPU: ``GPU_PEAK_TFLOPS`` below, from the vendors' datasheets (dense figures: the datasheets' "with sparsity"
  numbers are twice these).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# ---------------------------------------------------------------------------------------------------- CPU


#: FLOPs per cycle per physical core (one fused multiply-add = 2 FLOPs). Each entry names its basis.
CPU_FLOPS_PER_CYCLE = {
    # Intel AMX (Sapphire Rapids and later): 1,024 BF16 FLOPs per cycle per core — Intel, "Intel Advanced Matrix
    # Extensions (Intel AMX) overview" (2,048 INT8 operations or 1,024 BF16 FLOPs per cycle per core).
    "amx_bf16": 1024,
    # AVX-512 on cores with two 512-bit FMA units (Intel Xeon Scalable, AMD Zen 5): 2 × 16 fp32 lanes × 2.
    "avx512_2fma": 64,
    # AVX-512 on AMD Zen 4 (family 0x19): two 256-bit FMA pipes, 512-bit instructions take two passes — AMD,
    # "Software Optimization Guide for the AMD Zen4 Microarchitecture" (pub. 57647), FP pipes: 2 × 256-bit FMA.
    "avx512_zen4": 32,
    # AVX2 + FMA3 (Haswell and later, Zen 1-3): 2 FMA units × 8 fp32 lanes × 2.
    "avx2_fma": 32,
    # SSE2 only: one 4-lane multiply and one 4-lane add per cycle.
    "sse2": 8,
}
#: AVX512-BF16 (VDPBF16PS): each 32-bit lane does two bf16 multiply-adds, twice the fp32 FMA rate of the same unit.
AVX512_BF16_SPEEDUP = 2


@dataclass
class CpuInfo:
    vendor: str = ""
    family: int = 0
    model_name: str = ""
    flags: frozenset = field(default_factory=frozenset)
    mhz: float = 0.0
    threads_per_core: int = 1

    @property
    def bf16_units(self) -> str | None:
        """The CPU's bf16 matrix/vector unit (amx_bf16 or avx512_bf16), or None."""
        for flag in ("amx_bf16", "avx512_bf16"):
            if flag in self.flags:
                return flag
        return None

    def fp32_flops_per_cycle(self) -> tuple[int, str]:
        if "avx512f" in self.flags:
            if self.vendor == "AuthenticAMD" and self.family == 0x19:
                return CPU_FLOPS_PER_CYCLE["avx512_zen4"], "AVX-512 on AMD Zen 4, 2 × 256-bit FMA"
            return CPU_FLOPS_PER_CYCLE["avx512_2fma"], "AVX-512, 2 FMA units"
        if "avx2" in self.flags and "fma" in self.flags:
            return CPU_FLOPS_PER_CYCLE["avx2_fma"], "AVX2 + FMA"
        return CPU_FLOPS_PER_CYCLE["sse2"], "SSE2"

    def flops_per_cycle(self, dtype: str) -> tuple[int, str]:
        """FLOPs per cycle per physical core for matmuls in ``dtype`` (bf16 or fp32), and the unit doing them."""
        fp32, unit = self.fp32_flops_per_cycle()
        if dtype == "bf16" and self.bf16_units == "amx_bf16":
            return CPU_FLOPS_PER_CYCLE["amx_bf16"], "AMX-BF16"
        if dtype == "bf16" and self.bf16_units == "avx512_bf16":
            return fp32 * AVX512_BF16_SPEEDUP, f"AVX512-BF16 on {unit}"
        return fp32, unit  # bf16 without bf16 units is converted and computed at the fp32 rate


def read_cpuinfo(path: str | Path = "/proc/cpuinfo") -> CpuInfo:
    info = CpuInfo()
    try:
        text = Path(path).read_text()
    except OSError:
        return info
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:  # the first processor's entry stands for all
            fields[key.strip()] = value.strip()
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    siblings, cores = int(fields.get("siblings", 1) or 1), int(fields.get("cpu cores", 1) or 1)
    return CpuInfo(
        vendor=fields.get("vendor_id", ""),
        family=int(fields.get("cpu family", 0) or 0),
        model_name=fields.get("model name", ""),
        flags=frozenset(fields.get("flags", "").split()),
        mhz=max(mhz) if mhz else 0.0,
        threads_per_core=max(1, siblings // max(cores, 1)),
    )


def cpu_clock_hz(info: CpuInfo) -> float:
    sysfs = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return float(sysfs.read_text().strip()) * 1e3  # kHz
    except (OSError, ValueError):
        return info.mhz * 1e6


def cpu_cores_used(info: CpuInfo, processes: int) -> float:
    """Physical cores the run's threads occupy: threads over all processes, at most the cores this process may use."""
    import torch

    vcpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = min(torch.get_num_threads() * processes, vcpus)
    return threads / info.threads_per_core


# ---------------------------------------------------------------------------------------------------- GPU

#: Peak dense TFLOP/s per dtype (fp32 = CUDA cores; tf32/bf16/fp16 = tensor cores, without sparsity).
#: Keys are matched against ``torch.cuda.get_device_name()``, most specific first.
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    # NVIDIA H100 datasheet (nvidia.com/en-us/data-center/h100): sparse figures halved.
    "H100 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    "H100 PCIe": {"fp32": 51.0, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0},
    "H100": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},  # SXM5
    # NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf): same for 40/80 GB, SXM4 and PCIe.
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    # NVIDIA A10 datasheet: sparse tensor figures halved.
    "A10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0},
    # NVIDIA V100 datasheet (Tesla V100, Volta): no bf16 or tf32 units.
    "V100-SXM2": {"fp32": 15.7, "fp16": 125.0},
    "V100": {"fp32": 14.0, "fp16": 112.0},  # PCIe
    # NVIDIA T4 datasheet (Turing): no bf16 or tf32 units.
    "T4": {"fp32": 8.1, "fp16": 65.0},
}

#: The GPU of each Azure VM size in azft's catalog — Azure's VM size documentation (learn.microsoft.com,
#: "Sizes for virtual machines in Azure", GPU - accelerated compute): NC A100 v4 = A100 PCIe 80 GB; ND A100 v4 =
#: A100 SXM4 40 GB; NDm A100 v4 = A100 SXM4 80 GB; NCv3 = V100 16 GB (PCIe: a guess, the page says "V100");
#: NC H100 v5 = H100 NVL 94 GB; ND H100 v5 = H100 SXM5 80 GB; NDv2 = V100 SXM2 32 GB; NCasT4_v3 = T4;
#: NVadsA10_v5 = A10 (the sizes in this table hold whole GPUs).
AZURE_VM_GPUS = {
    "Standard_NC24ads_A100_v4": "A100",
    "Standard_NC48ads_A100_v4": "A100",
    "Standard_NC96ads_A100_v4": "A100",
    "Standard_ND96asr_v4": "A100",
    "Standard_ND96amsr_A100_v4": "A100",
    "Standard_NC6s_v3": "V100",
    "Standard_NC12s_v3": "V100",
    "Standard_NC24s_v3": "V100",
    "Standard_NC24rs_v3": "V100",
    "Standard_NC40ads_H100_v5": "H100 NVL",
    "Standard_NC80adis_H100_v5": "H100 NVL",
    "Standard_ND96isr_H100_v5": "H100",
    "Standard_ND40rs_v2": "V100-SXM2",
    "Standard_NC4as_T4_v3": "T4",
    "Standard_NC8as_T4_v3": "T4",
    "Standard_NC16as_T4_v3": "T4",
    "Standard_NC64as_T4_v3": "T4",
    "Standard_NV36ads_A10_v5": "A10",
    "Standard_NV72ads_A10_v5": "A10",
}


def gpu_peak_tflops(device_name: str, dtype: str) -> float | None:
    for key, peaks in GPU_PEAK_TFLOPS.items():
        if key.replace("-", " ").lower() in device_name.replace("-", " ").lower():
            return peaks.get(dtype) or peaks.get("fp16" if dtype == "bf16" else "fp32")
    return None


# ---------------------------------------------------------------------------------------------------- the device


@dataclass
class Device:
    """Where the run computes, the dtype its matmuls run in, and that device's summed peak FLOP/s (None: unknown)."""

    kind: str  # cuda | cpu
    name: str
    matmul_dtype: str  # bf16 | fp16 | tf32 | fp32
    peak_flops: float | None
    peak_basis: str


def detect_device(precision: str, processes: int) -> Device:
    """The device of this run, with the peak of ``processes`` such devices (one GPU per process on CUDA)."""
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        dtype = (
            precision
            if precision in ("bf16", "fp16")
            else ("tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32")
        )
        peak = gpu_peak_tflops(name, dtype)
        basis = (
            f"{processes} × {peak:g} TFLOP/s ({name}, {dtype}, datasheet)"
            if peak
            else f"{name}: not in the recipe's GPU table, MFU not reported"
        )
        return Device("cuda", name, dtype, peak * 1e12 * processes if peak else None, basis)
    info = read_cpuinfo()
    dtype = "bf16" if precision == "bf16" else "fp32"
    per_cycle, unit = info.flops_per_cycle(dtype)
    clock, cores = cpu_clock_hz(info), cpu_cores_used(info, processes)
    peak = cores * clock * per_cycle if clock else None
    basis = (
        f"{cores:g} cores × {clock / 1e9:.2f} GHz × {per_cycle} FLOPs/cycle ({unit}, {dtype})"
        if peak
        else "CPU clock unknown, MFU not reported"
    )
    return Device("cpu", info.model_name or "cpu", dtype, peak, basis)


# ---------------------------------------------------------------------------------------------------- precision


def auto_precision(cuda: bool) -> tuple[str, str]:
    """The fastest precision that trains correctly here, and why (bf16 > fp32; fp16 only where bf16 is absent)."""
    import torch

    if cuda:
        major, minor = torch.cuda.get_device_capability()
        name = torch.cuda.get_device_name()
        if (major, minor) >= (8, 0):
            return "bf16", f"{name} (compute capability {major}.{minor}) has bf16 tensor cores"
        return "fp16", (
            f"{name} (compute capability {major}.{minor}) has no bf16 units: fp16 mixed precision with loss scaling"
        )
    info = read_cpuinfo()
    unit = info.bf16_units
    if unit:
        return "bf16", f"bf16 autocast: this CPU has {unit.upper().replace('_', '-')} ({unit} in /proc/cpuinfo)"
    return "fp32", (
        "fp32: this CPU has no bf16 units (neither amx_bf16 nor avx512_bf16 in /proc/cpuinfo), so bf16 "
        "would only add conversions"
    )
