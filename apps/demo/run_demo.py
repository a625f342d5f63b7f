"""`make demo`: run the core demo and every installed domain package's demo, then write the gallery.

Domain packages register a ``difforge.demos`` entry point (``name = "difforge.<name>.demo:run"``),
a function ``run(out_dir) -> list[DemoSection]``. The core never imports a domain package; this app
finds them through the entry points.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from difforge.core import demo as core_demo
from difforge.core.cli import run_cli
from difforge.core.gallery import DemoSection, write_gallery


@run_cli
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--only", nargs="*", help="run only these demos (core, traj, hair, ...)")
    args = parser.parse_args()
    demos = {"core": core_demo.run}
    for ep in sorted(entry_points(group="difforge.demos"), key=lambda e: e.name):
        demos[ep.name] = ep.load
    sections: list[DemoSection] = []
    failed = []
    for name, fn in demos.items():
        if args.only and name not in args.only:
            continue
        print(f"[demo] {name} ...", flush=True)
        start = time.perf_counter()
        try:
            run = fn() if name != "core" else fn  # entry points load lazily
            results = run(args.out / name)
        except Exception as exc:  # one package's failure must not hide the others' results
            traceback.print_exc()
            failed.append(name)
            results = [DemoSection(title=name, error=f"{type(exc).__name__}: {exc}")]
        for section in results:
            for key, value in section.metrics.items():
                print(f"  {section.title} | {key}: {value}")
        print(f"[demo] {name} done in {time.perf_counter() - start:.1f} s", flush=True)
        sections.extend(results)
    index = write_gallery(args.out, sections)
    print(f"[demo] gallery: {index}")
    if failed:
        print(f"[demo] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
