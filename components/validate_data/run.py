"""Pipeline step: run azft's data checks on the training (and validation) file.

The checks are azft's own (``azft.data.check_file``), not a copy: the component's ``additional_includes`` puts
the ``azft`` package next to this script in the job's code snapshot, so ``import azft`` resolves to the same code
``azft data check`` runs on a laptop.

Exit status: 0 when every file passes, 2 when a file has errors (or warnings with ``--fail-on-warnings``), the
azft error's own exit code for any other azft error. A report is written to ``--report`` in every case, so the
failed step still shows what is wrong in the Azure ML studio's Outputs tab.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the snapshot's copy of azft sits beside this file
    sys.path.insert(0, str(HERE))

EXIT_INVALID = 2
MAX_PRINTED = 200


def _bool(value: str) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-data", required=True, type=Path)
    p.add_argument("--validation-data", type=Path)
    p.add_argument("--task", required=True)
    p.add_argument("--model", help="catalog model id, for context-length and token checks")
    p.add_argument("--backend", default="maap", help="backend whose limits apply (maas adds the 512 MB file limit)")
    p.add_argument("--fail-on-warnings", type=_bool, default=False)
    p.add_argument("--report", required=True, type=Path, help="output folder for report.json and report.md")
    p.add_argument("--checked-train-data", type=Path, help="where to place the checked training file")
    return p.parse_args(argv)


def _render_markdown(results: dict, ok: bool) -> str:
    lines = ["# azft data check", "", f"Result: {'passed' if ok else 'FAILED'}", ""]
    for role, res in results.items():
        lines.append(f"## {role}: `{res['file']}`")
        if "error" in res:
            lines += ["", f"- error: {res['error']}", ""]
            continue
        lines += ["", f"- errors: {len(res['errors'])}", f"- warnings: {len(res['warnings'])}", ""]
        for kind in ("errors", "warnings"):
            for text in res[kind][:MAX_PRINTED]:
                lines.append(f"- {kind[:-1]}: {text}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from azft.data import check_file
    from azft.errors import AzftError

    files = {"train": args.train_data}
    if args.validation_data is not None:
        files["validation"] = args.validation_data

    exit_code = 0
    results: dict[str, dict] = {}
    for role, path in files.items():
        entry: dict = {"file": str(path)}
        try:
            report = check_file(path, args.task, model=args.model or None, backend=args.backend)
        except AzftError as exc:
            entry["error"] = exc.message + (f" — {exc.hint}" if exc.hint else "")
            exit_code = exit_code or exc.exit_code
            print(f"{role}: {entry['error']}", file=sys.stderr)
            results[role] = entry
            continue
        errors = [p.render() for p in report.errors]
        warnings = [p.render() for p in report.warnings]
        entry.update(ok=report.ok, errors=errors, warnings=warnings, report=report.to_dict())
        results[role] = entry
        failed = (not report.ok) or bool(errors) or (args.fail_on_warnings and bool(warnings))
        status = "FAILED" if failed else "ok"
        print(f"{role}: {path}: {status} ({len(errors)} errors, {len(warnings)} warnings)")
        for text in errors[:MAX_PRINTED]:
            print(f"  error: {text}", file=sys.stderr)
        for text in warnings[:MAX_PRINTED]:
            print(f"  warning: {text}")
        if failed:
            exit_code = exit_code or EXIT_INVALID

    ok = exit_code == 0
    args.report.mkdir(parents=True, exist_ok=True)
    payload = {"ok": ok, "task": args.task, "model": args.model, "backend": args.backend, "files": results}
    (args.report / "report.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    (args.report / "report.md").write_text(_render_markdown(results, ok), encoding="utf-8")

    if ok and args.checked_train_data is not None:
        # The fine-tune step reads this output, so it cannot start before the check passed, and it trains on
        # exactly the bytes that were checked.
        args.checked_train_data.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.train_data, args.checked_train_data)
    if not ok:
        print(f"data check failed; see {args.report / 'report.md'}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
