"""Run the Azure ML REST emulator standalone: ``python -m azft.emulator [--port N] [--seconds-per-state S]``.

Prints the base URL, the CA certificate path and the environment variables that point azft at it, then serves
until interrupted. Jobs move on a real clock. Control endpoints: ``GET /_emulator/jobs``,
``GET /_emulator/jobs/<name>/metrics``, ``GET /_emulator/jobs/<name>/logs``, ``POST /_emulator/faults``,
``POST /_emulator/outcomes``, ``POST /_emulator/advance`` (manual clock only), ``POST /_emulator/reset``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    from azft.emulator.server import Emulator
    from azft.emulator.tls import make_test_ca

    ap = argparse.ArgumentParser(prog="python -m azft.emulator", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    ap.add_argument("--seconds-per-state", type=float, default=5.0, help="how long a job stays in each state")
    ap.add_argument(
        "--clock",
        choices=("real", "manual"),
        default="real",
        help="real: jobs move on their own; manual: only POST /_emulator/advance moves them",
    )
    ap.add_argument("--subscription-id", default="00000000-0000-4000-8000-000000000001")
    ap.add_argument("--resource-group", default="rg-azft")
    ap.add_argument("--workspace", default="ws-azft")
    ap.add_argument("--location", default="eastus2")
    ap.add_argument(
        "--blob-endpoint",
        default=None,
        help="account URL uploads should go to, e.g. an Azurite https://127.0.0.1:PORT/devstoreaccount1",
    )
    ap.add_argument("--ca-dir", default=None, help="directory to write ca.pem/cert.pem/key.pem into")
    ap.add_argument("--json", action="store_true", help="print the connection details as one JSON line")
    args = ap.parse_args(argv)
    if not (args.host.startswith("127.") or args.host in ("localhost", "::1")):
        ap.error("the emulator only listens on loopback addresses")

    emu = Emulator(
        subscription_id=args.subscription_id,
        resource_group=args.resource_group,
        workspace=args.workspace,
        location=args.location,
        clock=args.clock,
        seconds_per_state=args.seconds_per_state,
        blob_endpoint=args.blob_endpoint,
        ca=make_test_ca(args.ca_dir) if args.ca_dir else None,
        host=args.host,
        port=args.port,
    )
    emu.start()
    info = {"url": emu.base_url, "ca_pem_path": emu.ca_pem_path, "env": emu.env()}
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"Azure ML emulator listening on {emu.base_url}")
        print(f"CA certificate: {emu.ca_pem_path}")
        print("Point azft at it with:")
        for k, v in emu.env().items():
            print(f"  export {k}={v}")
        print("Press Ctrl+C to stop.", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
