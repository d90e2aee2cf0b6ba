"""Write docs/spec-reference.md from the spec's JSON Schema: `python scripts/gen_spec_reference.py`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _type(prop: dict, defs: dict) -> str:
    if "$ref" in prop:
        return "section"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        return " or ".join(_type(p, defs) for p in prop["anyOf"] if p.get("type") != "null")
    t = prop.get("type", "")
    if t == "array":
        return f"list of {_type(prop.get('items', {}), defs)}"
    if t == "object":
        return "mapping"
    return t


def _default(prop: dict) -> str:
    if "default" not in prop:
        return "required" if prop.get("_required") else ""
    d = prop["default"]
    return "" if d is None else f"`{json.dumps(d)}`"


def render() -> str:
    from azft.spec import json_schema

    schema = json_schema()
    defs = schema.get("$defs", {})
    lines = [
        "# Job spec reference",
        "",
        "Generated from the spec's JSON Schema (`azft schema`) by "
        "`scripts/gen_spec_reference.py`; do not edit by hand.",
        "",
    ]

    def section(title: str, node: dict) -> None:
        lines.extend([f"## `{title}`" if title else "## top level", ""])
        if node.get("description"):
            lines.extend([node["description"], ""])
        lines.extend(["| key | type | default | meaning |", "|---|---|---|---|"])
        required = set(node.get("required", []))
        nested = []
        for key, prop in node.get("properties", {}).items():
            ref = prop.get("$ref") or next((p.get("$ref") for p in prop.get("anyOf", []) if "$ref" in p), None)
            if ref is None and prop.get("type") == "array" and "$ref" in prop.get("items", {}):
                nested.append((f"{title + '.' if title else ''}{key}[]", defs[prop["items"]["$ref"].split("/")[-1]]))
            if ref:
                nested.append((f"{title + '.' if title else ''}{key}", defs[ref.split("/")[-1]]))
            prop = dict(prop, _required=key in required)
            desc = (prop.get("description") or "").replace("|", "\\|")
            lines.append(f"| `{key}` | {_type(prop, defs)} | {_default(prop)} | {desc} |")
        lines.append("")
        for t, n in nested:
            section(t, n)

    section("", schema)
    return "\n".join(lines)


if __name__ == "__main__":
    out = ROOT / "docs" / "spec-reference.md"
    out.write_text(render())
    print(f"wrote {out}")
