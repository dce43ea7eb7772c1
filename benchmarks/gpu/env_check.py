"""Environment check for the GPU machine: versions, the device, a matmul, the package import.

Writes ``env.json`` to ``--out`` and prints it. Exit status 0 even without a GPU (the
report says so); 1 only when the package cannot be imported.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="outputs/gpu")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch
    info: dict = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda_build": torch.version.cuda,
                  "cuda_available": torch.cuda.is_available()}
    try:
        import torch_geometric
        info["torch_geometric"] = torch_geometric.__version__
        import gpu_api as api
        info["package"] = "ok"
        info["hardware"] = api.hardware()
    except Exception as e:  # noqa: BLE001 - report, then fail
        info["package"] = f"{type(e).__name__}: {e}"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2 ** 30, 1),
                    sms=p.multi_processor_count, bf16=torch.cuda.is_bf16_supported(),
                    nccl=torch.distributed.is_nccl_available())
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):
            a @ a
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()
        info["bf16_matmul_tflops"] = round(10 * 2 * 8192 ** 3 / (time.perf_counter() - t0) / 1e12, 1)
    if shutil.which("nvidia-smi"):
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = r.stdout.strip() or r.stderr.strip()
    (out / "env.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(info, indent=2))
    return 0 if info.get("package") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
