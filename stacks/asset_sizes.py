"""Check the bundled Lambda assets against Lambda's size limit: ``python -m stacks.asset_sizes [cdk.out]``.

Lambda counts a function's code plus all its layers, unzipped, against 250 MB
(``querio.tiers.LAMBDA_UNZIPPED_LIMIT_BYTES``). This reads the synthesized Compute nested-stack
template (``aws:asset:path`` metadata, which ``cdk synth`` writes) and the staged asset directories,
prints one line per function and per layer, and exits 1 if any function is over the limit.
Run after a real ``cdk synth`` (``make synth``), not after a test synth that skips bundling.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from querio.tiers import LAMBDA_UNZIPPED_LIMIT_BYTES

MB = 1024 * 1024


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def function_sizes(cdk_out: Path) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """``(layers, functions)``: layer bytes by name; ``(code bytes, total bytes)`` by function."""
    templates = sorted(cdk_out.glob("*QuerioCompute*.nested.template.json"))
    if not templates:
        raise SystemExit(f"no Querio Compute nested-stack template in {cdk_out}: run `make synth` first")
    resources = json.loads(templates[0].read_text())["Resources"]

    def asset_bytes(resource: dict) -> int:
        rel = resource.get("Metadata", {}).get("aws:asset:path")
        if not rel or not (cdk_out / rel).exists():
            raise SystemExit("asset not staged (was bundling skipped?): " + str(rel))
        return tree_bytes(cdk_out / rel)

    layer_bytes = {lid: asset_bytes(r) for lid, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion"}
    layers = {resources[lid]["Properties"].get("Description", lid): n for lid, n in layer_bytes.items()}
    functions: dict[str, tuple[int, int]] = {}
    for fid, r in resources.items():
        if r["Type"] != "AWS::Lambda::Function" or "aws:asset:path" not in r.get("Metadata", {}):
            continue
        if not r["Properties"].get("Layers"):
            continue  # aws-cdk-lib's own helper functions (inline, a few KB)
        code = asset_bytes(r)
        total = code + sum(layer_bytes[ref["Ref"]] for ref in r["Properties"]["Layers"] if "Ref" in ref)
        functions[r["Properties"].get("Description", fid)] = (code, total)
    return layers, functions


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    cdk_out = Path(args[0] if args else "cdk.out")
    layers, functions = function_sizes(cdk_out)
    limit = LAMBDA_UNZIPPED_LIMIT_BYTES
    for name, n in layers.items():
        print(f"layer     {n / MB:7.1f} MB  {name}")
    worst = 0
    for name, (code, total) in functions.items():
        worst = max(worst, total)
        print(f"function  {total / MB:7.1f} MB  of {limit / MB:.0f} MB ({code / 1024:.0f} KB code + layers)  {name}")
    if worst > limit:
        print(f"FAIL: a function is {worst / MB:.1f} MB unzipped, over Lambda's {limit / MB:.0f} MB", file=sys.stderr)
        return 1
    print(f"OK: largest function {worst / MB:.1f} MB of {limit / MB:.0f} MB ({(limit - worst) / MB:.1f} MB spare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
