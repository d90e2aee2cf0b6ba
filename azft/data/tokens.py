"""Token counting: the model's real tokenizer and chat template when they are on this machine, else an estimate.

Loading order for a tokenizer reference:

* a local directory (``tokenizer.json`` + ``tokenizer_config.json``, as ``save_pretrained`` writes them);
* ``tiny-phi3``: the small local Phi-3 built by :func:`azft.tiny_phi3.ensure_tiny_phi3`;
* a Hugging Face hub id, through ``AutoTokenizer.from_pretrained(id, local_files_only=True)``: the local cache
  only, nothing is downloaded.

Whatever fails to load leaves a note and the counts fall back to a clearly labelled estimate; it never raises.

The loaded tokenizer travels to worker processes as a :class:`TokenizerSpec` (the ``tokenizers`` JSON, the chat
template and the special tokens), so workers import neither torch nor transformers. Chat rows are rendered with the
same Jinja setup transformers uses for ``apply_chat_template`` and encoded in batches by the Rust tokenizer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Phi-3's chat template (as in the instruct models' tokenizer_config.json), used when a tokenizer has none.
from azft.tiny_phi3 import CHAT_TEMPLATE as PHI3_CHAT_TEMPLATE

# Hub ids for catalog model ids, used only when the catalog does not name one.
_HUB_IDS = {
    "phi-3-mini-4k-instruct": "microsoft/Phi-3-mini-4k-instruct",
    "phi-3-mini-128k-instruct": "microsoft/Phi-3-mini-128k-instruct",
    "phi-3-small-8k-instruct": "microsoft/Phi-3-small-8k-instruct",
    "phi-3-small-128k-instruct": "microsoft/Phi-3-small-128k-instruct",
    "phi-3-medium-4k-instruct": "microsoft/Phi-3-medium-4k-instruct",
    "phi-3-medium-128k-instruct": "microsoft/Phi-3-medium-128k-instruct",
    "phi-3.5-mini-instruct": "microsoft/Phi-3.5-mini-instruct",
    "phi-4": "microsoft/phi-4",
    "phi-4-mini-instruct": "microsoft/Phi-4-mini-instruct",
}

_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass
class ModelInfo:
    model_id: str
    context_length: int | None
    hub_id: str | None


def resolve_model(model_id: str | None, context_length: int | None = None) -> ModelInfo | None:
    """Context length and tokenizer source of a catalog model id.

    The catalog (``azft.catalog.get_model``) is the source of truth; an explicit ``context_length`` overrides it.
    Unknown ids raise :class:`azft.errors.UsageError` (from the catalog).
    """
    if model_id is None:
        return None
    try:
        from azft.catalog import get_model
    except ImportError:  # the catalog module is not part of this install
        get_model = None
    hub_id = None
    ctx = context_length
    if get_model is not None:
        m = get_model(model_id)
        if ctx is None:
            ctx = getattr(m, "context_length", None)
        for attr in ("hub_id", "hf_id", "huggingface_id", "hf_model_id"):
            if getattr(m, attr, None):
                hub_id = getattr(m, attr)
                break
        if hub_id is None and getattr(m, "local_path", None):
            hub_id = m.local_path
    if model_id.lower() == "tiny-phi3":
        hub_id = "tiny-phi3"
    if hub_id is None:
        hub_id = _HUB_IDS.get(model_id.lower()) or (model_id if "/" in model_id else None)
    return ModelInfo(model_id, ctx, hub_id)


@dataclass
class TokenizerSpec:
    """A tokenizer in a form that pickles cheaply and loads without transformers."""

    name: str
    tokenizer_json: str
    chat_template: str | None = None
    special_tokens: dict[str, str] = field(default_factory=dict)
    template_is_default: bool = False


@dataclass
class TokenizerLoad:
    spec: TokenizerSpec | None
    note: str  # where it came from, or why counts are estimates


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _token_str(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):  # AddedToken serialised
        return v["content"]
    return None


def _spec_from_dir(path: Path) -> TokenizerSpec | None:
    tj = path / "tokenizer.json"
    if not tj.is_file():
        return None
    cfg = _read_json(path / "tokenizer_config.json")
    template = cfg.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    jinja_file = path / "chat_template.jinja"
    if jinja_file.is_file():
        template = jinja_file.read_text(encoding="utf-8")
    elif (path / "chat_template.json").is_file():
        template = _read_json(path / "chat_template.json").get("chat_template", template)
    special = {k: s for k in _SPECIAL_KEYS if (s := _token_str(cfg.get(k))) is not None}
    return TokenizerSpec(
        name=str(path),
        tokenizer_json=tj.read_text(encoding="utf-8"),
        chat_template=template if isinstance(template, str) else None,
        special_tokens=special,
    )


def spec_from_object(tok: Any, name: str | None = None) -> TokenizerSpec:
    """A TokenizerSpec from a transformers fast tokenizer or a ``tokenizers.Tokenizer``."""
    from azft.errors import UsageError

    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None and hasattr(tok, "encode_batch") and hasattr(tok, "to_str"):
        backend = tok
    if backend is None:
        raise UsageError(
            "the tokenizer has no fast (Rust) backend",
            hint="pass a fast tokenizer (PreTrainedTokenizerFast) or a tokenizers.Tokenizer",
        )
    template = getattr(tok, "chat_template", None)
    special = {}
    for k in _SPECIAL_KEYS:
        v = _token_str(getattr(tok, k, None)) if backend is not tok else None
        if v is not None:
            special[k] = v
    return TokenizerSpec(
        name=name or getattr(tok, "name_or_path", "") or type(tok).__name__,
        tokenizer_json=backend.to_str(),
        chat_template=template if isinstance(template, str) else None,
        special_tokens=special,
    )


def load_tokenizer(ref: str | os.PathLike | None) -> TokenizerLoad:
    """Load a tokenizer from a local directory, ``tiny-phi3`` or the local Hugging Face cache; never raises."""
    return verified(_load_tokenizer(ref), ref)


def verified(load: TokenizerLoad, ref: Any) -> TokenizerLoad:
    """The load itself if its tokenizer and chat template can be built, else an estimate with the reason."""
    if load.spec is None:
        return load
    try:
        TokenCounter(load.spec)
    except Exception as exc:
        return TokenizerLoad(
            None,
            f"tokenizer {str(ref)!r} cannot be used ({type(exc).__name__}: "
            f"{str(exc)[:200]}): token counts are estimates",
        )
    return load


def _load_tokenizer(ref: str | os.PathLike | None) -> TokenizerLoad:
    if ref is None:
        return TokenizerLoad(None, "no tokenizer given: token counts are estimates (~4 characters per token)")
    ref_s = str(ref)
    path = Path(ref_s).expanduser()
    try:
        if ref_s == "tiny-phi3":
            try:
                from azft.tiny_phi3 import ensure_tiny_phi3
            except ImportError:
                return TokenizerLoad(None, "tiny-phi3 is not available in this install: token counts are estimates")
            path = Path(ensure_tiny_phi3())
        if path.is_dir():
            spec = _spec_from_dir(path)
            if spec is not None:
                return TokenizerLoad(spec, f"tokenizer from {path}")
            return _from_pretrained(str(path), local=True)
        if path.exists():
            return TokenizerLoad(None, f"{path} is not a tokenizer directory: token counts are estimates")
        return _from_pretrained(ref_s, local=False)
    except Exception as exc:  # a broken tokenizer must never stop the data check
        return TokenizerLoad(
            None,
            f"could not load tokenizer {ref_s!r} ({type(exc).__name__}: {str(exc)[:200]}): token counts are estimates",
        )


def _in_hf_cache(ref: str) -> bool | None:
    """Whether the local Hugging Face cache holds a tokenizer for hub id ``ref`` (None: cannot tell).

    Checked before importing transformers, so a check without a cached tokenizer stays fast."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        return any(
            isinstance(try_to_load_from_cache(ref, name), str)
            for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
        )
    except Exception:  # an id the hub library rejects (e.g. a malformed repo id)
        return False


def _from_pretrained(ref: str, *, local: bool) -> TokenizerLoad:
    if not local and _in_hf_cache(ref) is False:
        return TokenizerLoad(
            None,
            f"no tokenizer for {ref} (not in the local Hugging Face cache; nothing is "
            "downloaded): token counts are estimates",
        )
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return TokenizerLoad(None, "transformers is not installed: token counts are estimates")
    try:
        tok = AutoTokenizer.from_pretrained(ref, local_files_only=True)
    except Exception as exc:
        where = ref if local else f"{ref} (not in the local Hugging Face cache; nothing is downloaded)"
        return TokenizerLoad(None, f"no tokenizer for {where}: token counts are estimates [{type(exc).__name__}]")
    try:
        spec = spec_from_object(tok, ref)
    except Exception as exc:
        return TokenizerLoad(None, f"tokenizer {ref} cannot be used ({exc}): token counts are estimates")
    return TokenizerLoad(
        spec, f"tokenizer {ref} from the local Hugging Face cache" if not local else f"tokenizer from {ref}"
    )


# ------------------------------------------------------------------------------------------- rendering + counting


def compile_chat_template(template: str):
    """Compile a chat template the way transformers does (sandboxed Jinja, trim_blocks, lstrip_blocks)."""
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Generation(Extension):
        # `{% generation %}...{% endgeneration %}` marks assistant text for masks; for counting it renders as-is.
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        from datetime import datetime

        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(template)


#: Phi-3's template as published in the instruct models' tokenizer_config.json (no empty-system check).
PHI3_HUB_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)


def known_phi3_renderer(template: str):
    """A plain-Python renderer for the Phi-3 templates azft knows, or None for any other template.

    It returns exactly what the Jinja template renders (a test checks this), skipping Jinja's compile (~50 ms) and
    per-row interpretation; it returns None for a row it does not handle the way Jinja would (non-string content,
    a message that is not a mapping), and the caller renders that row with Jinja.
    """
    if template not in (PHI3_CHAT_TEMPLATE, PHI3_HUB_CHAT_TEMPLATE):
        return None
    skip_empty_system = template == PHI3_CHAT_TEMPLATE and "message['content'] %}" in template

    def render(messages: list, eos_token: str) -> str | None:
        parts = []
        for m in messages:
            if not isinstance(m, dict):
                return None
            role = m.get("role")
            if role not in ("system", "user", "assistant"):
                continue
            content = m.get("content")
            if not isinstance(content, str):
                return None
            if role == "system" and skip_empty_system and not content:
                continue
            parts.append(f"<|{role}|>\n{content}<|end|>\n")
        parts.append(eos_token if isinstance(eos_token, str) else "")
        return "".join(parts)

    return render


class TokenCounter:
    """Exact counts with a real tokenizer. Built once per process from a TokenizerSpec."""

    def __init__(self, spec: TokenizerSpec):
        from tokenizers import Tokenizer

        self.spec = spec
        self.tokenizer = Tokenizer.from_str(spec.tokenizer_json)
        self._encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        self._encode_offsets = self.tokenizer.encode_batch
        self._template_source = spec.chat_template or PHI3_CHAT_TEMPLATE
        self.template_is_default = spec.chat_template is None
        self._template = None  # compiled on first need: the known Phi-3 templates render without Jinja
        self._fast = known_phi3_renderer(self._template_source)
        self._render_kwargs = dict(spec.special_tokens)
        self._render_kwargs.setdefault("eos_token", "")
        self._render_kwargs.setdefault("bos_token", "")

    def render(self, messages: list) -> str:
        if self._fast is not None:
            text = self._fast(messages, self._render_kwargs["eos_token"])
            if text is not None:
                return text
        if self._template is None:
            self._template = compile_chat_template(self._template_source)
        return self._template.render(
            messages=messages, tools=None, documents=None, add_generation_prompt=False, **self._render_kwargs
        )

    def lengths(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._encode(texts, add_special_tokens=False)]

    def count_chat(self, rows: Iterable[list]) -> list[tuple[int, int] | str]:
        """(total, assistant) token counts per conversation; a string when the template rejects the row.

        The total is the length of the rendered conversation, encoded once. Assistant tokens are the tokens of
        that same encoding that cover an assistant message's content (found through the encoding's offsets), so
        no text is encoded twice; a row whose template rewrites the content (so it cannot be found in the
        rendered text) has its assistant contents encoded on their own instead.
        """
        texts: list[str] = []
        spans: list[list[tuple[int, int]] | None] = []
        extra: list[str] = []
        plan: list[tuple[int, int, int] | str] = []  # (text index, first extra, end extra) or an error
        for messages in rows:
            try:
                rendered = self.render(messages)
            except Exception as exc:  # jinja TemplateError from raise_exception, or a template bug
                plan.append(f"the chat template rejects this conversation: {str(exc)[:300]}")
                continue
            row_spans: list[tuple[int, int]] | None = []
            pos = 0
            assistant = [m["content"] for m in messages if m.get("role") == "assistant" and m.get("weight", 1) != 0]
            for content in assistant:
                at = rendered.find(content, pos)
                if at < 0:
                    row_spans = None
                    break
                row_spans.append((at, at + len(content)))
                pos = at + len(content)
            a = len(extra)
            if row_spans is None:
                extra.extend(assistant)
            plan.append((len(texts), a, len(extra)))
            texts.append(rendered)
            spans.append(row_spans)
        encodings = self._encode_offsets(texts, add_special_tokens=False) if texts else []
        extra_lens = self.lengths(extra)
        out: list[tuple[int, int] | str] = []
        for p in plan:
            if isinstance(p, str):
                out.append(p)
                continue
            i, a, b = p
            enc = encodings[i]
            row_spans = spans[i]
            if row_spans is None:
                out.append((len(enc.ids), sum(extra_lens[a:b])))
                continue
            out.append((len(enc.ids), sum(_tokens_in_span(enc, s, e) for s, e in row_spans)))
        return out

    def count_fields(self, rows: Iterable[tuple[tuple, tuple]]) -> list[tuple[int, int]]:
        """(total, output) token counts for rows of (input texts, output texts)."""
        texts: list[str] = []
        spans = []
        for ins, outs in rows:
            a = len(texts)
            texts.extend(ins)
            b = len(texts)
            texts.extend(outs)
            spans.append((a, b, len(texts)))
        lens = self.lengths(texts)
        return [(sum(lens[a:c]), sum(lens[b:c])) for a, b, c in spans]


def _tokens_in_span(enc: Any, start: int, end: int) -> int:
    """Number of tokens of ``enc`` that cover characters in [start, end)."""
    if end <= start:
        return 0
    first = None
    for p in range(start, end):  # positions inside a token's trimmed whitespace map to no token
        first = enc.char_to_token(p)
        if first is not None:
            break
    if first is None:
        return 0
    last = first
    for p in range(end - 1, start - 1, -1):
        t = enc.char_to_token(p)
        if t is not None:
            last = t
            break
    return last - first + 1
