"""``tiny-phi3``: the Phi-3 architecture scaled down, built locally so everything runs offline.

``ensure_tiny_phi3()`` builds, once, a Hugging Face model directory (config, safetensors weights, fast tokenizer,
chat template) into the azft cache (``$AZFT_CACHE`` or ``~/.cache/azft``) and returns its path. The build is
deterministic: the tokenizer is a byte-level BPE trained on ``azft/assets/tiny-phi3/corpus.txt`` shipped in the
package, with the Phi-3 special tokens (``<|system|>``, ``<|user|>``, ``<|assistant|>``, ``<|end|>``,
``<|endoftext|>``) and the Phi-3 chat template; the weights are a random init with a fixed seed. Two builds on any
machine give byte-identical tokenizers and identical weights.

Heavy libraries (torch, transformers, tokenizers) are imported inside the functions only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

NAME = "tiny-phi3"
#: Bump when the recipe below changes, so caches built by an older version are rebuilt, not reused.
VERSION = 1
SEED = 1234
VOCAB_SIZE = 1024

#: Phi-3 special tokens in their Phi-3 order (the real model has them at ids 32000+; here they follow the bytes).
SPECIAL_TOKENS = [
    "<unk>",
    "<s>",
    "</s>",
    "<|endoftext|>",
    "<|assistant|>",
    "<|end|>",
    "<|system|>",
    "<|user|>",
]

#: The Phi-3 / Phi-3.5 chat template (as in the public tokenizer_config.json of the instruct models).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

#: Phi3Config scaled down: 2 layers, hidden 128 (the real Phi-3-mini: 32 layers, hidden 3072).
MODEL_CONFIG = dict(
    hidden_size=128,
    intermediate_size=344,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=4096,
    original_max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    tie_word_embeddings=False,
    attention_dropout=0.0,
    resid_pdrop=0.0,
    embd_pdrop=0.0,
)

_MARKER = "azft-tiny-phi3.json"


def corpus_path() -> Path:
    return Path(__file__).parent / "assets" / NAME / "corpus.txt"


def default_cache_dir() -> Path:
    env = os.environ.get("AZFT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "azft"


def _fingerprint() -> str:
    h = hashlib.sha256()
    h.update(corpus_path().read_bytes())
    h.update(json.dumps([VERSION, SEED, VOCAB_SIZE, SPECIAL_TOKENS, CHAT_TEMPLATE, MODEL_CONFIG]).encode())
    return h.hexdigest()[:16]


def is_built(path: Path) -> bool:
    marker = path / _MARKER
    try:
        return json.loads(marker.read_text())["fingerprint"] == _fingerprint()
    except (OSError, ValueError, KeyError):
        return False


def ensure_tiny_phi3(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the tiny-phi3 model directory, building it (deterministically, once) if needed.

    ``cache_dir`` is the azft cache root (default ``$AZFT_CACHE`` or ``~/.cache/azft``); the model lives in
    ``<cache_dir>/tiny-phi3``. Safe to call from several processes at once: the build happens under a file lock
    and lands with an atomic rename.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / NAME
    if is_built(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / f".{NAME}.lock"
    with open(lock_path, "a+") as lock:
        _lock(lock)
        try:
            if is_built(target):
                return target
            tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=root))
            try:
                # transformers imports deepspeed when it is installed, and deepspeed prints its accelerator detection
                # to stdout: a first `azft plan -o json` would not be JSON. Its logger binds to stderr instead.
                with contextlib.redirect_stdout(sys.stderr):
                    build(tmp)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp, target)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            _unlock(lock)
    return target


def _lock(f) -> None:
    try:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    except ImportError:  # pragma: no cover - Windows: the atomic rename alone keeps the directory consistent
        pass


def _unlock(f) -> None:
    try:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    except ImportError:  # pragma: no cover
        pass


def build_tokenizer():
    """The tiny-phi3 fast tokenizer (a ``transformers.PreTrainedTokenizerFast``), built deterministically."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = corpus_path().read_text(encoding="utf-8").splitlines()
    tok.train_from_iterator(lines, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|assistant|>", "<|end|>", "<|system|>", "<|user|>"],
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
        padding_side="right",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build(out_dir: str | os.PathLike) -> Path:
    """Write the tiny-phi3 model directory into ``out_dir`` (config, weights, tokenizer, marker)."""
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    vocab = len(tokenizer)
    config = Phi3Config(
        vocab_size=vocab,
        bos_token_id=tokenizer.convert_tokens_to_ids("<s>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        **MODEL_CONFIG,
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        model = Phi3ForCausalLM(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=[config.eos_token_id, tokenizer.convert_tokens_to_ids("<|end|>")],
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / _MARKER).write_text(
        json.dumps({"name": NAME, "version": VERSION, "fingerprint": _fingerprint(), "vocab_size": vocab}, indent=2)
    )
    return out
