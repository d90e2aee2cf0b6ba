"""Upload throughput of ``azft.azure.upload.upload_files`` against azure-storage-blob's own ``upload_blob``.

    python bench/upload_bench.py [--size-mb 64] [--repeat 5]

Both go to Azurite (started here, HTTPS, bearer tokens) on this machine, so the figures compare client-side
overhead (hashing, staged blocks, metadata, commit) rather than a network. Three measurements, medians of
``--repeat`` runs, each printed with its ratio to the baseline measured in the same run:
  baseline    ``BlobClient.upload_blob(file, overwrite=True)`` (the SDK's chunked upload)
  azft first  ``upload_files`` of fresh content (hash + stage + commit)
  azft again  ``upload_files`` of content already there (hash + one HEAD: should be far below the baseline)
Needs ``npm install`` at the repository root (Azurite).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from azure.storage.blob import ContainerClient

    from azft.azure.upload import upload_files
    from azft.emulator.azurite import Azurite
    from azft.emulator.credential import FakeCredential

    work = Path(tempfile.mkdtemp(prefix="azft-upload-bench-"))
    with Azurite(location=work / "azurite") as az:
        cred = FakeCredential()
        container = ContainerClient(
            az.blob_endpoint, "bench", credential=cred, connection_verify=str(az.ca.ca_pem_path)
        )
        container.create_container()
        base, first, again = [], [], []
        for i in range(args.repeat):
            f = work / f"train-{i}.jsonl"
            with open(f, "wb") as fh:  # fresh content each run, so "first" really uploads
                fh.write(os.urandom(args.size_mb * 1024 * 1024))
            t = time.perf_counter()
            with open(f, "rb") as fh:
                container.get_blob_client(f"baseline/{uuid.uuid4().hex}").upload_blob(fh, overwrite=True)
            base.append(time.perf_counter() - t)
            t = time.perf_counter()
            r1 = upload_files([f], container, progress=False)
            first.append(time.perf_counter() - t)
            t = time.perf_counter()
            r2 = upload_files([f], container, progress=False)
            again.append(time.perf_counter() - t)
            assert r1.bytes_uploaded == f.stat().st_size and r2.bytes_uploaded == 0
            f.unlink()
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    b = statistics.median(base)
    print(f"{args.size_mb} MiB file, median of {args.repeat} runs (Azurite on loopback, HTTPS):")
    for label, xs in (("baseline upload_blob", base), ("azft first upload", first), ("azft re-upload", again)):
        m = statistics.median(xs)
        print(f"  {label:22s} {m:7.3f} s  {args.size_mb / m:8.1f} MiB/s  ratio {m / b:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
