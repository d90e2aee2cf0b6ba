"""The plain-Python Phi-3 renderer returns exactly what the Jinja chat template renders."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from azft.data.tokens import PHI3_CHAT_TEMPLATE, PHI3_HUB_CHAT_TEMPLATE, compile_chat_template, known_phi3_renderer

message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "System"])},
    optional={
        "content": st.one_of(st.text(max_size=30), st.just(""), st.integers(), st.none()),
        "name": st.text(max_size=5),
    },
)


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(message, max_size=6), eos=st.sampled_from(["", "<|endoftext|>"]))
def test_fast_renderer_matches_jinja(messages, eos):
    for template in (PHI3_CHAT_TEMPLATE, PHI3_HUB_CHAT_TEMPLATE):
        fast = known_phi3_renderer(template)(messages, eos)
        if fast is None:
            continue  # the caller falls back to Jinja for this row
        jinja = compile_chat_template(template).render(
            messages=messages, add_generation_prompt=False, eos_token=eos, bos_token=""
        )
        assert fast == jinja


def test_other_templates_use_jinja():
    assert known_phi3_renderer("{{ messages }}") is None
