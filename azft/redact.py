"""Secrets: how azft recognises them and scrubs them. The one module every writer and error message uses.

Two things make a value secret:

* its *name*: a value stored under ``api_key``, ``client_secret``, ``hfToken``, ``password``, ``sas``,
  ``connection_string``, ``credential``... Names are split into words (``snake_case``, ``kebab-case``,
  ``dotted.keys``, ``camelCase``) and compared word by word, so ``max_tokens``, ``eos_token`` or ``tokenizer``
  are left alone;
* its *shape*, anywhere in free text: JSON Web Tokens, GitHub/Hugging Face/OpenAI/Slack/AWS/Google tokens, Azure
  storage account keys, Entra ID client secrets, ``AccountKey=``/``SharedAccessSignature=`` pairs, SAS signatures
  in URLs, ``user:password@`` in URLs, ``Bearer`` values, PEM private keys, and high-entropy strings right after a
  key-like word (``password: Xq7...``, ``api key = 9f8a...``).

:func:`find_secret` says what a string holds (the spec loader refuses it); :func:`redact_text` and :func:`redact`
replace secrets with ``***`` and leave the rest readable (the blob URL, the endpoint). Standard library only:
``azft validate`` imports this.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Optional

REDACTED = "***"

SECRET_HINT = (
    "secrets never go in a spec: sign in with `az login`, a managed identity or GitHub OIDC (DefaultAzureCredential), "
    "or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET in the environment or a Key Vault"
)

# words that make a key secret on their own
_SECRET_WORDS = frozenset(
    {
        "key",
        "keys",
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
        "clientsecret",
        "connectionstring",
        "privatekey",
        "accesskey",
    }
)
# word sequences that make a key secret
_SECRET_PHRASES = (("connection", "string"), ("conn", "str"), ("private", "key"))
# explicit exceptions: words that look secret but name non-secret settings
_SAFE_KEYS = frozenset({"key_name", "keyname", "token_count", "sort_key", "primary_key_name"})
# tokenizer settings: ``eos_token``, ``pad_token``... name vocabulary entries, not credentials
_VOCAB_PREFIXES = frozenset(
    {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "special", "start", "end", "stop", "max", "num", "total", "min"}
)

# (literal triggers, pattern, what it is, replacement). A pattern runs only when one of its triggers (lowercase) is
# in the text: a 10 MB description without any is scanned in milliseconds. Replacements keep the rest readable.
_SHAPES: tuple[tuple[tuple[str, ...], re.Pattern[str], str, str], ...] = (
    (
        ("-----begin",),
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
        "a private key",
        REDACTED,
    ),
    (("eyj",), re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "a JSON Web Token", REDACTED),
    (
        ("key", "signature", "password", "pwd", "secret"),
        re.compile(
            r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret|AccessKey)"
            r"\s*=\s*([^;\s\"']+)"
        ),
        "a storage account key or another connection-string secret",
        r"\1=" + REDACTED,
    ),
    (
        ("sig=", "signature=", "code=", "token=", "api-key=", "apikey=", "key=", "password="),
        re.compile(r"(?i)([?&](?:sig|signature|code|token|access_token|api-key|apikey|key|password)=)[^&#\s\"']+"),
        "a signature or token in a URL",
        r"\1" + REDACTED,
    ),
    (
        ("bearer", "basic"),
        re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{12,}"),
        "an HTTP authorization value",
        r"\1 " + REDACTED,
    ),
    (
        ("://",),
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:?#]*):([^/@\s?#]+)@"),
        "a password inside a URL",
        r"\1\2:" + REDACTED + "@",
    ),
    (
        ("gh", "github_pat_"),
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
        "a GitHub token",
        REDACTED,
    ),
    (("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{30,}"), "a Hugging Face token", REDACTED),
    (("sk-", "pk-", "rk-"), re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{20,}"), "an API key", REDACTED),
    (("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "a Slack token", REDACTED),
    (("akia", "asia"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key", REDACTED),
    (("aiza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), "a Google API key", REDACTED),
    (("npm_",), re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"), "an npm token", REDACTED),
    (
        ("==",),
        re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"),
        "a storage account key",
        REDACTED,
    ),
    (
        ("q~",),
        re.compile(r"(?<![A-Za-z0-9~._-])[A-Za-z0-9_-]{3}[78]Q~[A-Za-z0-9~._-]{31,34}(?![A-Za-z0-9~._-])"),
        "an Entra ID client secret",
        REDACTED,
    ),
)
_KEYWORD_TRIGGERS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")
_ALL_TRIGGERS = tuple(sorted({t for s in _SHAPES for t in s[0]} | set(_KEYWORD_TRIGGERS)))
# short text: one regex scan says whether any trigger occurs at all (most text holds none); long text: substring
# searches (fast C scans) on its lowercase copy
_ANY_TRIGGER = re.compile(
    "|".join(
        sorted(
            {re.escape(t) for s in _SHAPES for t in s[0]} | {re.escape(t) for t in _KEYWORD_TRIGGERS},
            key=len,
            reverse=True,
        )
    ),
    re.IGNORECASE,
)

# a key-like word, a separator, then a candidate value (judged by _high_entropy)
_KEYWORD_VALUE = re.compile(
    r"(?i)\b(password|passwd|passphrase|pwd|secret|token|api[ _-]?key|access[ _-]?key|account[ _-]?key|"
    r"client[ _-]?secret|private[ _-]?key|auth|credentials?|key)"
    r"(\s*(?:[:=]|\bis\b|\s)\s*[\"']?)([^\s\"',;<>()\[\]{}]{8,})"
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
            if w in ("token", "key", "keys") and i > 0 and words[i - 1] in _VOCAB_PREFIXES:
                continue
            return True
    if any(tuple(words[i : i + len(p)]) == p for p in _SECRET_PHRASES for i in range(len(words))):
        return True
    return re.sub(r"[^a-z0-9]", "", flat) in _SECRET_WORDS


def _high_entropy(value: str, *, password_word: bool) -> bool:
    """A credential-like value: mixed character classes and close to random (Shannon entropy per character)."""
    if value.startswith(("${", "http://", "https://", "/", "./", "-")) or value.lower() in ("required", "optional"):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    counts = Counter(value)
    entropy = -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())
    if password_word:
        return classes >= 2 and entropy >= 2.5
    return len(value) >= 16 and classes >= 2 and re.search(r"[0-9]", value) is not None and entropy >= 3.3


def _keyword_matches(text: str, low: str):
    if not any(t in low for t in _KEYWORD_TRIGGERS):
        return
    for m in _KEYWORD_VALUE.finditer(text):
        word, separator = m.group(1).lower(), m.group(2)
        loose = word.startswith("pass") or word == "pwd"
        if not separator.strip():  # "password Xq7..." with no `:`/`=`/`is`: only clearly random values
            loose = False
        if _high_entropy(m.group(3), password_word=loose):
            yield m


def _lowered_if_triggered(text: str) -> Optional[str]:
    if len(text) < 2048:
        return text.lower() if _ANY_TRIGGER.search(text) else None
    low = text.lower()
    return low if any(t in low for t in _ALL_TRIGGERS) else None


def find_secret(text: str) -> Optional[str]:
    """What kind of credential ``text`` contains ("a GitHub token", ...), or None."""
    if not isinstance(text, str) or len(text) < 8:
        return None
    low = _lowered_if_triggered(text)
    if low is None:
        return None
    for triggers, pattern, what, _ in _SHAPES:
        if any(t in low for t in triggers) and pattern.search(text):
            return what
    for _ in _keyword_matches(text, low):
        return "a credential after a key-like word"
    return None


def redact_text(text: str) -> str:
    """Replace secret-looking substrings of ``text``."""
    if not isinstance(text, str) or len(text) < 8:
        return text
    low = _lowered_if_triggered(text)
    if low is None:
        return text
    for triggers, pattern, _, repl in _SHAPES:
        if any(t in low for t in triggers):
            text = pattern.sub(repl, text)
    for m in reversed(list(_keyword_matches(text, text.lower()))):
        text = text[: m.start(3)] + REDACTED + text[m.end(3) :]
    return text


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with every value under a secret-looking key, and every secret-looking substring, replaced.

    Booleans and ``None`` under secret names are kept (``use_auth_token: false`` says nothing secret). Keys are
    scrubbed too: a token pasted as a tag name is as secret as one pasted as its value.
    """
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            key = redact_text(k) if isinstance(k, str) else k
            if is_secret_key(k) and v is not None and not isinstance(v, bool) and v != "":
                out[key] = REDACTED
            else:
                out[key] = redact(v)
        return out
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact(v) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj)
    return obj
