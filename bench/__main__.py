"""Run every benchmark module (bench/bench_*.py, each exposing run() -> dict)
and print one JSON document on stdout. `python -m bench NAME...` runs a subset."""
import importlib
import json
import pathlib
import platform
import sys
import time


def main(argv: list[str]) -> int:
    here = pathlib.Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    out = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "results": {},
    }
    for name in names:
        t0 = time.perf_counter()
        mod = importlib.import_module(f"bench.{name}")
        result = mod.run()
        result["wall_s"] = round(time.perf_counter() - t0, 3)
        out["results"][name.removeprefix("bench_")] = result
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
