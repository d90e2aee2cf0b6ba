"""Scrub secrets from anything azft writes to MLflow (params, tags, artifacts, messages).

Two rules, applied recursively to dicts, lists, tuples and strings:

* a value stored under a secret-looking *name* (``api_key``, ``client_secret``, ``hf_token``, ``password``,
  ``sas``, ``connection_string``, ``credential``, ...) is replaced whole. Names are split into words
  (``snake_case``, ``kebab-case``, ``dotted.keys``, ``camelCase``) and compared word by word, so counters such as
  ``max_tokens``, ``total_tokens`` or ``tokenizer`` are left alone;
* a secret-looking *value* anywhere (a JWT, a SAS signature in a URL, ``AccountKey=...`` in a connection string,
  a bearer token, a Hugging Face token, a storage account key) is replaced in place, so the rest of the string
  (the blob URL, the endpoint) stays readable.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"

# words that make a key secret on their own
_SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "accountkey",
        "secret",
        "secrets",
        "token",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "sas",
        "credential",
        "credentials",
        "authorization",
        "cookie",
        "sig",
        "signature",
    }
)
# word sequences that make a key secret
_SECRET_PHRASES = (("connection", "string"), ("conn", "str"), ("private", "key"))
# explicit exceptions: words that look secret but name non-secret settings
_SAFE_KEYS = frozenset({"key_name", "keyname", "token_count", "sort_key", "primary_key_name"})
# tokenizer settings: ``eos_token``, ``pad_token``... name vocabulary entries, not credentials
_VOCAB_PREFIXES = frozenset({"pad", "eos", "bos", "unk", "sep", "cls", "mask", "special", "start", "end", "stop"})

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JSON Web Tokens (Azure AD access tokens, OIDC tokens)
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
    # key=value pairs inside connection strings
    (
        re.compile(
            r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret|AccessKey)=([^;\s\"']+)"
        ),
        r"\1=" + REDACTED,
    ),
    # SAS query strings: the signature is the secret part
    (re.compile(r"(?i)([?&](?:sig|signature|code|token|access_token|api-key|apikey)=)[^&#\s\"']+"), r"\1" + REDACTED),
    # HTTP authorization values
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{12,}"), r"\1 " + REDACTED),
    # user:password@host in URLs
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:]+):([^/@\s]+)@"), r"\1\2:" + REDACTED + "@"),
    # Hugging Face and OpenAI-style API tokens
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"), REDACTED),
    # Azure storage account keys: 64 random bytes in base64
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"), REDACTED),
)

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _words(key: str) -> list[str]:
    return [w.lower() for part in _WORD_SPLIT.split(key) for w in _CAMEL.split(part) if w]


def is_secret_key(key: object) -> bool:
    """True when a mapping key names a secret (``client_secret``, ``hfToken``, ``storage.sas``...)."""
    if not isinstance(key, str):
        return False
    flat = key.lower()
    if flat in _SAFE_KEYS:
        return False
    words = _words(key)
    for i, w in enumerate(words):
        if w in _SECRET_WORDS:
            if w == "token" and i > 0 and words[i - 1] in _VOCAB_PREFIXES:
                continue
            return True
    return any(
        tuple(words[i : i + len(phrase)]) == phrase for phrase in _SECRET_PHRASES for i in range(len(words))
    ) or flat.replace("-", "_") in {"connectionstring", "apikey", "accesskey"}


def redact_text(text: str) -> str:
    """Replace secret-looking substrings of ``text``."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact(obj: Any) -> Any:
    """Return a copy of ``obj`` with every secret-looking key value and substring replaced by ``***``.

    Booleans and ``None`` under secret names are kept (``use_auth_token: false`` says nothing secret).
    """
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if is_secret_key(k) and v is not None and not isinstance(v, bool) and v != "":
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v) for v in obj) if isinstance(obj, list) else tuple(redact(v) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj)
    return obj
