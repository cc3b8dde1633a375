"""OpenAPI import: how long a big real document takes to validate, normalise, import and load.

Standalone (a measurement, not a test)::

    .venv/bin/python benchmarks/openapi_import.py                 # GitHub's REST API (tests/data)
    .venv/bin/python benchmarks/openapi_import.py --spec FILE --repeat 5 --json
    .venv/bin/python benchmarks/openapi_import.py --baseline      # + openapi-spec-validator's validate()

Each phase runs ``--repeat`` times in this process (median, min and max in ms; ops/s = operations
of the document per second). Phases:

* ``parse``: bytes → dict (json/yaml)
* ``validate_structure``: the document against the OpenAPI JSON Schema (jsonschema-rs when installed,
  else the compiled draft-04 check for 2.0/3.0, else jsonschema)
* ``validate_structure_jsonschema``: the same with plain jsonschema (what explains an invalid document)
* ``validate_semantics``: the openapi-spec-validator keyword checks, on the plain dict
* ``normalise_index``: operation ids and the lazy operation map
* ``normalise_all``: building every operation with resolved schemas
* ``import``: ``import_openapi`` end to end into a fresh folder (read, validate, normalise, write the
  document and the Api definition atomically, write the normalised cache)
* ``load_cold``: ``load_spec(path, validate=False)`` without a cache entry (parse + index)
* ``load_cached``: the same with the cache entry (what a DAG parse pays), and
  ``load_cached_one_op``: that plus building one operation
* ``baseline_openapi_spec_validator`` (``--baseline``): ``openapi_spec_validator.validate`` — slow

``measure()`` returns the same numbers as a dict for a benchmark runner.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = REPO / "tests" / "data" / "github-api.json.gz"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _time(fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> dict:
    samples = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {
        "median_ms": round(statistics.median(samples), 2),
        "min_ms": round(min(samples), 2),
        "max_ms": round(max(samples), 2),
        "samples_ms": [round(s, 2) for s in samples],
    }


def measure(spec_file: Path = DEFAULT_SPEC, repeat: int = 3, baseline: bool = False) -> dict:
    work = Path(tempfile.mkdtemp(prefix="autopilot-openapi-bench-"))
    os.environ["AUTOPILOT_SPEC_CACHE"] = str(work / "cache")
    from autopilot_provider.openapi import cache, validation
    from autopilot_provider.openapi.cache import load_spec
    from autopilot_provider.openapi.spec import normalise, parse_document
    from autopilot_provider.server.openapi_import import import_openapi

    try:
        raw = gzip.decompress(spec_file.read_bytes()) if spec_file.suffix == ".gz" else spec_file.read_bytes()
        plain = work / ("spec.json" if raw.lstrip()[:1] == b"{" else "spec.yaml")
        plain.write_bytes(raw)
        document = parse_document(raw)
        version = validation.detect_version(document)
        ops = len(normalise(document).operations)
        results: dict = {
            "spec": spec_file.name,
            "bytes": len(raw),
            "openapi": str(document.get("openapi") or document.get("swagger")),
            "operations": ops,
            "structure_backend": validation.structure_backend(version),
            "repeat": repeat,
            "phases": {},
        }
        phases = results["phases"]
        phases["parse"] = _time(lambda: parse_document(raw), repeat)
        phases["validate_structure"] = _time(lambda: validation.structure(document, version), repeat)
        phases["validate_structure_jsonschema"] = _time(
            lambda: next(validation._python_validator(version).iter_errors(document), None), 1
        )
        phases["validate_semantics"] = _time(lambda: list(validation.semantic_errors(document, version)), repeat)
        phases["normalise_index"] = _time(lambda: normalise(document), repeat)
        phases["normalise_all"] = _time(lambda: list(normalise(document).operations.values()), repeat)

        counter = iter(range(10**6))

        def fresh() -> None:
            shutil.rmtree(work / "cache", ignore_errors=True)

        phases["import"] = _time(
            lambda: import_openapi(work / f"definitions{next(counter)}", "bench", source=plain), repeat, setup=fresh
        )
        stored = next(iter((work / "definitions0" / "apis" / "specs").iterdir()))
        phases["load_cold"] = _time(lambda: load_spec(stored, validate=False, cache=False), repeat)
        cache.load(stored)  # make sure the entry exists
        phases["load_cached"] = _time(lambda: load_spec(stored, validate=False), repeat)
        some = list(normalise(document).operations)[ops // 2]
        phases["load_cached_one_op"] = _time(lambda: load_spec(stored, validate=False).operations[some], repeat)
        if baseline:
            from openapi_spec_validator import validate

            phases["baseline_openapi_spec_validator"] = _time(lambda: validate(document), 1)
        for phase in phases.values():
            phase["ops_per_s"] = round(ops / (phase["median_ms"] / 1000), 1) if phase["median_ms"] else None
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="an OpenAPI document (.json, .yaml, .gz)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", action="store_true", help="also time openapi_spec_validator.validate()")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = measure(args.spec, args.repeat, args.baseline)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(
        f"{results['spec']}: {results['bytes'] / 1e6:.1f} MB, OpenAPI {results['openapi']}, "
        f"{results['operations']} operations; structure checked by {results['structure_backend']}; "
        f"median of {results['repeat']}"
    )
    print(f"{'phase':34} {'ms':>10} {'ops/s':>12}")
    for name, phase in results["phases"].items():
        print(f"{name:34} {phase['median_ms']:>10.1f} {phase['ops_per_s'] or 0:>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
