"""Submit overhead of the maas backend against the raw SDK, in the same run, against the loopback emulator.

For each of N rounds (fresh spec name each round):
  * azft submit   — MaasBackend.submit(plan): GET job, GET workspace (region), GET datastore, upload, PUT job
  * azft resubmit — the same plan again: GET job only (the CI-retry path)
  * raw SDK       — ml_client.jobs.create_or_update(CustomModelFineTuningJob) built by hand, data already remote
Prints the median wall time and request count of each, and the ratios against the raw SDK.

    python bench/submit_overhead.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()

    from azure.ai.ml import Input, Output

    from azft.azure.sdk import finetuning_job_class
    from azft.azure.sdk import quiet as quiet_sdk
    from azft.azure.upload import DirectoryUploader
    from azft.backends.maas import MaasBackend
    from azft.emulator.server import Emulator
    from azft.plan import make_plan
    from azft.spec import parse_spec_text

    work = Path(tempfile.mkdtemp(prefix="azft-bench-"))
    train = work / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(200)
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))

    times: dict[str, list[float]] = {"azft submit": [], "azft resubmit": [], "raw SDK": []}
    counts: dict[str, list[int]] = {k: [] for k in times}
    with Emulator() as em:
        client = em.make_ml_client(retry_total=3, retry_backoff_factor=0.01)
        backend = MaasBackend(ml_client=client, uploader=DirectoryUploader(work / "datastore"))
        # warm-up: first-call costs (schema loading, TLS) are not per-submit overhead
        with quiet_sdk():
            client.jobs.list()
        for i in range(args.rounds):
            spec = parse_spec_text(f"name: bench-{i}\nmodel: phi-4-mini-instruct\ndata: {{train: {train}}}\n")
            plan = make_plan(spec, "maas", check_data=False)

            def measure(label, fn):
                n = len(em.requests)
                t = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - t)
                counts[label].append(len(em.requests) - n)

            measure("azft submit", lambda plan=plan: backend.submit(plan))
            measure("azft resubmit", lambda plan=plan: backend.submit(plan))
            uri = (
                f"azureml://datastores/workspaceblobstore/paths/azft/data/{plan.data_file('train').sha256}/train.jsonl"
            )

            def raw(i=i, uri=uri):
                job = finetuning_job_class()(
                    name=f"raw-{i}",
                    task="ChatCompletion",
                    model=Input(
                        type="mlflow_model",
                        path="azureml://registries/azureml/models/Phi-4-mini-instruct/labels/latest",
                    ),
                    training_data=Input(type="uri_file", path=uri),
                    hyperparameters={"num_train_epochs": "1"},
                    outputs={"registered_model": Output(type="mlflow_model", name="raw")},
                )
                with quiet_sdk():
                    client.jobs.create_or_update(job)

            measure("raw SDK", raw)
    base_t = statistics.median(times["raw SDK"])
    base_n = statistics.median(counts["raw SDK"])
    print(f"{'path':<15} {'median ms':>10} {'requests':>9} {'time ratio':>11} {'request ratio':>14}")
    for label in times:
        t = statistics.median(times[label])
        n = statistics.median(counts[label])
        print(f"{label:<15} {t * 1000:>10.1f} {n:>9.0f} {t / base_t:>10.2f}x {n / base_n:>13.2f}x")
    print(f"({args.rounds} rounds; raw SDK = CustomModelFineTuningJob + jobs.create_or_update, data already remote)")


if __name__ == "__main__":
    main()
