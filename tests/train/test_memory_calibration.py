"""The memory estimate against the measured peak of real training steps of the recipe on this machine.

What is measured (azft/memory_calibration.py): the recipe's own model loading, method wrapping, Trainer subclass
and packed loss train a small Phi-3 for two optimizer steps; the second step's peak is the bytes alive when it starts
(weights, AdamW state, counted from the tensors) plus the maximum of the running sum of every allocation and free
the CPU allocator reports to torch.profiler during the step — the CPU counterpart of
torch.cuda.max_memory_allocated, which the same code reads on a GPU. The cases vary hidden size, layers, sequence
length, micro-batch, method, checkpointing, grouped-query attention, LoRA dropout and precision (bf16: the recipe's
bf16 weight layout under CPU autocast, as on a GPU). bench/memory_estimate.py runs the whole grid.
"""

from __future__ import annotations

import pytest

from azft.memory import ERROR_BOUND

pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from azft.memory_calibration import QUICK, run

    return run(QUICK, workdir=tmp_path_factory.mktemp("memcal"))


def test_estimate_within_the_documented_bound_over_the_grid(results):
    table = "\n".join(
        f"{r.case.label():36s} estimate {r.estimate_bytes / 1e6:7.2f} MB  measured "
        f"{r.measured_bytes / 1e6:7.2f} MB  error {r.error:+.1%}  (step-dynamic {r.dynamic_error:+.1%})"
        for r in results
    )
    print(table)
    for r in results:
        assert abs(r.error) <= ERROR_BOUND, table
        assert abs(r.dynamic_error) <= ERROR_BOUND, table


def test_grid_covers_every_axis(results):
    cases = [r.case for r in results]
    for axis in ("hidden", "layers", "seq", "batch", "method", "checkpointing", "precision", "kv_heads"):
        assert len({getattr(c, axis) for c in cases}) > 1, axis
    assert {c.method for c in cases} >= {"lora", "dora", "full"}


def test_estimate_mirrors_the_recipe_attention_layout(recipe):
    """azft/memory.py cannot import the recipe (no torch in the CLI): its copies of the attention's constants must
    stay the recipe's, or the estimate counts a layout the recipe no longer builds."""
    import ft_attention

    from azft import memory

    assert memory.ATTENTION_MATMUL_MAX == ft_attention.MATMUL_MAX
    assert memory.ATTENTION_LENGTH_MULTIPLE == ft_attention.LENGTH_MULTIPLE
