#!/usr/bin/env python3
"""Prints verify/floor ratios and throughput from criterion's estimates (after `cargo bench`)."""
import json
import pathlib
import sys

TARGETS = {"1KiB": (1024, 1.25), "64KiB": (65536, 1.05)}
# The receiver's one call (signature, digest, JSON, timestamp, id) against the same floor.
RECEIVE_TARGETS = {"1KiB": 2.0, "64KiB": 1.1}


def mean_ns(root, group, name):
    path = root / f"up42_{group}" / name / "new" / "estimates.json"
    return json.loads(path.read_text())["mean"]["point_estimate"]


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    print(f"{'body':>6} {'floor ns':>10} {'verify ns':>10} {'MB/s':>8} {'ratio':>6} {'target':>6} "
          f"{'raw ns':>9} {'raw ratio':>9}")
    for group, (size, target) in TARGETS.items():
        floor = mean_ns(root, group, "floor")
        verify = mean_ns(root, group, "verify")
        raw = mean_ns(root, group, "verify_raw")
        print(f"{group:>6} {floor:10.0f} {verify:10.0f} {size / verify * 1e3:8.1f} {verify / floor:6.2f} "
              f"{target:6.2f} {raw:9.0f} {raw / floor:9.2f}")
    print()
    print(f"{'body':>6} {'floor ns':>10} {'receive ns':>10} {'ratio':>6} {'target':>6}")
    for group, target in RECEIVE_TARGETS.items():
        floor = mean_ns(root, group, "floor")
        receive = mean_ns(root, group, "receive")
        print(f"{group:>6} {floor:10.0f} {receive:10.0f} {receive / floor:6.2f} {target:6.2f}")
    print()
    print(f"{'RFC 9421 B.2':>14} {'floor ns':>10} {'verify ns':>10} {'ratio':>6} {'target':>6}")
    for alg in ("hmac", "ed25519"):
        group = root / f"rfc9421_{alg}"
        if not group.exists():
            continue
        floor = json.loads((group / "floor" / "new" / "estimates.json").read_text())["mean"]["point_estimate"]
        verify = json.loads((group / "verify" / "new" / "estimates.json").read_text())["mean"]["point_estimate"]
        print(f"{alg:>14} {floor:10.0f} {verify:10.0f} {verify / floor:6.2f} {1.3:6.2f}")


if __name__ == "__main__":
    main()
