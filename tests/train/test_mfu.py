"""Model FLOPs, device peak and MFU as a run reports them, checked against a hand calculation (docs/mfu.md);
``precision: auto`` on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.train.train_helpers import recipe_args

# tiny-phi3 (azft/tiny_phi3.py): 2 layers, hidden 128, MLP 344, 4 heads of 32, no sliding window.
D, FF, HEADS, HEAD_DIM, LAYERS, R = 128, 344, 4, 32, 2, 8
LINEARS = {"qkv": (D, 3 * D), "o": (D, D), "gate_up": (D, 2 * FF), "down": (FF, D)}  # (d_in, d_out)


def hand_lora_per_token() -> int:
    """LoRA r=8 on every linear layer: frozen weights 4 FLOPs/token (forward + input gradient), adapters 6, except
    layer 0's qkv, whose input (the frozen embeddings) needs no gradient: 2 for its weights, 4 for its lora_A."""
    base = sum(i * o for i, o in LINEARS.values())
    adapters = sum(R * (i + o) for i, o in LINEARS.values())
    qkv_in, qkv_out = LINEARS["qkv"]
    return 4 * base * LAYERS - 2 * qkv_in * qkv_out + 6 * adapters * LAYERS - 2 * qkv_in * R


def hand_full_per_token() -> int:
    return 6 * sum(i * o for i, o in LINEARS.values()) * LAYERS


ATTENTION_PER_PAIR = 3 * 4 * HEADS * HEAD_DIM * LAYERS  # QKᵀ + PV forward, twice that backward


def test_the_lora_count_of_the_worked_example_in_the_docs():
    assert hand_lora_per_token() == 1_482_752 + 195_328
    assert ATTENTION_PER_PAIR == 3_072


def test_model_flops_of_tiny_phi3_match_a_hand_count(recipe, tiny_model):
    import ft_flops
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    vocab = model.config.vocab_size
    full = ft_flops.ModelFlops.of(model)
    assert (full.per_token, full.per_pair, full.per_scored) == (
        hand_full_per_token(),
        ATTENTION_PER_PAIR,
        6 * D * vocab,
    )
    lora = ft_flops.ModelFlops.of(
        get_peft_model(
            model, LoraConfig(r=R, lora_alpha=16, target_modules="all-linear", lora_dropout=0.05, task_type="CAUSAL_LM")
        )
    )
    assert (lora.per_token, lora.per_pair, lora.per_scored) == (
        hand_lora_per_token(),
        ATTENTION_PER_PAIR,
        4 * D * vocab,
    )
    assert ft_flops.causal_pairs(5) == 15 and ft_flops.causal_pairs(5, window=2) == 3 + 3 * 2


CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
cpu family\t: {family}
model name\t: {name}
cpu MHz\t\t: {mhz}
siblings\t: {siblings}
cpu cores\t: {cores}
flags\t\t: fpu sse sse2 {flags}

"""


@pytest.mark.parametrize(
    "vendor,family,flags,fp32,bf16",
    [
        ("AuthenticAMD", 25, "avx2 fma avx512f avx512_bf16", 32, 64),  # Zen 4: 2 × 256-bit FMA pipes
        ("GenuineIntel", 6, "avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile", 64, 1024),  # Sapphire Rapids: AMX
        ("GenuineIntel", 6, "avx2 fma avx512f", 64, 64),  # Skylake/Ice Lake: no bf16 units
        ("AuthenticAMD", 23, "avx2 fma", 32, 32),  # Zen 2
        ("GenuineIntel", 6, "", 8, 8),
    ],
)
def test_cpu_flops_per_cycle_follow_the_instruction_set(recipe, tmp_path, vendor, family, flags, fp32, bf16):
    import ft_hardware

    path = tmp_path / "cpuinfo"
    path.write_text(
        CPUINFO.format(vendor=vendor, family=family, name="test", mhz=2000.0, siblings=4, cores=2, flags=flags)
    )
    info = ft_hardware.read_cpuinfo(path)
    assert info.flops_per_cycle("fp32")[0] == fp32 and info.flops_per_cycle("bf16")[0] == bf16
    assert info.threads_per_core == 2 and info.mhz == 2000.0


def test_every_gpu_of_the_catalogs_vm_sizes_has_a_sourced_peak(recipe):
    import ft_hardware

    from azft.catalog import load_catalog

    catalog = load_catalog()
    gpu_sizes = [name for name, vm in catalog.skus.items() if vm.get("gpus")]
    assert gpu_sizes
    for size in gpu_sizes:
        gpu = ft_hardware.AZURE_VM_GPUS.get(size)
        assert gpu, f"{size}: which GPU? add it to AZURE_VM_GPUS"
        assert ft_hardware.gpu_peak_tflops(f"NVIDIA {gpu}", "fp32")
    assert ft_hardware.gpu_peak_tflops("NVIDIA A100-SXM4-80GB", "bf16") == 312.0
    assert ft_hardware.gpu_peak_tflops("NVIDIA H100 NVL", "bf16") == 835.5
    assert ft_hardware.gpu_peak_tflops("Tesla V100-PCIE-16GB", "fp16") == 112.0
    assert ft_hardware.gpu_peak_tflops("Some Future GPU", "bf16") is None


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def hand_cpu_peak(dtype: str) -> float:
    """cores × clock × FLOPs/cycle for this machine, by hand from /proc/cpuinfo."""
    import torch

    text = Path("/proc/cpuinfo").read_text()
    field = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines()) if v}
    flags = cpu_flags()
    mhz = max(float(ln.split(":")[1]) for ln in text.splitlines() if ln.startswith("cpu MHz"))
    sysfs = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    hz = float(sysfs.read_text()) * 1e3 if sysfs.exists() else mhz * 1e6
    zen4 = field.get("vendor_id") == "AuthenticAMD" and field.get("cpu family") == "25"
    fp32 = (32 if zen4 else 64) if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 8
    per_cycle = (
        1024
        if (dtype == "bf16" and "amx_bf16" in flags)
        else 2 * fp32
        if (dtype == "bf16" and "avx512_bf16" in flags)
        else fp32
    )
    smt = int(field.get("siblings", 1)) // int(field.get("cpu cores", 1))
    cores = min(torch.get_num_threads(), len(os.sched_getaffinity(0))) / max(smt, 1)
    return cores * hz * per_cycle


@pytest.fixture(scope="module")
def runs(recipe, data_dir, tiny_model, tmp_path_factory):
    """One epoch of the test data with precision auto and with fp32 (same seed, same batches)."""
    out = {}
    for precision in ("auto", "fp32"):
        d = tmp_path_factory.mktemp(f"run-{precision}")
        assert recipe.train.main(recipe_args(data_dir, d, max_steps=-1, epochs=1, precision=precision)) == 0
        out[precision] = (d, json.loads((d / "metrics" / "metrics.json").read_text()))
    return out


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU's flags from /proc/cpuinfo")
def test_auto_precision_here_and_its_validation_loss_is_within_1_percent_of_fp32(runs):
    flags = cpu_flags()
    auto = runs["auto"][1]
    if flags & {"amx_bf16", "avx512_bf16"}:
        assert auto["precision"] == "bf16"
        assert "bf16 autocast" in auto["precision_reason"] and (
            "avx512_bf16" in auto["precision_reason"] or "amx_bf16" in auto["precision_reason"]
        )
    else:
        assert auto["precision"] == "fp32" and "no bf16 units" in auto["precision_reason"]
    fp32 = runs["fp32"][1]
    assert fp32["precision"] == "fp32"
    # the tolerance: bf16 keeps 8 bits of mantissa in the matmuls; the fp32 master weights keep training exact
    assert auto["eval_loss"] == pytest.approx(fp32["eval_loss"], rel=0.01)


@pytest.mark.parametrize("dropout", [0.0, 0.05])
def test_adapters_take_their_input_in_the_compute_dtype_and_train_the_same(
    recipe, tiny_model, data_dir, tmp_path, dropout
):
    """Under a half-precision base the recipe skips peft's cast of each adapter input to fp32 (autocast casts it
    straight back): lora_A sees bf16. Without LoRA dropout the loss and every adapter gradient are bitwise those of
    peft's default. With dropout, the dropout runs on the bf16 input (same mask; PyTorch rounds its 1/(1 - p) to
    bf16), and the step is as close to an fp32 step as peft's default is."""
    import ft_model
    import torch

    argv = recipe_args(data_dir, tmp_path, model=str(tiny_model), lora_dropout=dropout)
    args = recipe.train.build_parser().parse_args(argv)
    ids = torch.randint(3, 500, (2, 48), generator=torch.Generator().manual_seed(0))

    def step(precision: str, cast_input: bool = False):
        torch.manual_seed(0)
        model, _ = ft_model.load_model(str(tiny_model), args, precision, cuda=False)
        model = ft_model.apply_method(model, args)
        g = torch.Generator().manual_seed(1)
        for n, p in model.named_parameters():
            if "lora_B" in n:  # as after some training: while lora_B is zero, lora_A's gradients are zero
                p.data.copy_(torch.randn(p.shape, generator=g) * 0.02)
        seen = []
        lora_a = next(m for n, m in model.named_modules() if n.endswith("qkv_proj.lora_A.default"))
        lora_a.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].dtype))
        if cast_input:  # peft's default
            for m in model.modules():
                if hasattr(m, "cast_input_dtype_enabled"):
                    m.cast_input_dtype_enabled = True
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        return seen[0], loss.detach(), grads

    dtype, loss, grads = step("bf16")
    peft_dtype, peft_loss, peft_grads = step("bf16", cast_input=True)
    assert (dtype, peft_dtype) == (torch.bfloat16, torch.float32)
    assert grads.keys() == peft_grads.keys() and len(grads) > 0
    if not dropout:
        assert torch.equal(loss, peft_loss)
        assert all(torch.equal(grads[n], peft_grads[n]) for n in grads)
        return
    _, ref_loss, ref_grads = step("fp32")

    def distance(gr):  # the worst relative difference of a parameter's gradient from the fp32 step's
        return max(float((gr[n] - ref_grads[n]).norm() / ref_grads[n].norm()) for n in gr)

    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-2)
    assert distance(grads) <= 1.25 * distance(peft_grads), (distance(grads), distance(peft_grads))


def test_a_local_runs_mfu_is_within_10_percent_of_a_hand_calculation(runs, recipe, tokenizer, tiny_model, data_dir):
    from transformers import AutoConfig

    run_dir, m = runs["auto"]
    examples = recipe.data.encode_file(data_dir / "train.jsonl", "chat-completion", tokenizer, 256).examples
    vocab = AutoConfig.from_pretrained(tiny_model).vocab_size
    hand_flops = 0
    for e in examples:
        n = len(e["input_ids"])
        scored = sum(1 for x in e["labels"] if x != -100)
        hand_flops += hand_lora_per_token() * n + ATTENTION_PER_PAIR * n * (n + 1) // 2 + 4 * D * vocab * scored
    assert m["model_flops"] == pytest.approx(hand_flops, rel=0.10)
    hand_rate = hand_flops / m["train_runtime_seconds"]
    assert m["tflops_per_second"] * 1e12 == pytest.approx(hand_rate, rel=0.10)
    hand_peak = hand_cpu_peak(m["precision"])
    assert m["peak_tflops"] * 1e12 == pytest.approx(hand_peak, rel=0.10)
    assert m["mfu"] == pytest.approx(hand_rate / hand_peak, rel=0.10)
    rows = [json.loads(x) for x in (run_dir / "metrics" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["mfu"] > 0 and r["tflops_per_second"] > 0 for r in rows if "loss" in r)  # every logged step
