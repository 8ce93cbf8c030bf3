"""Regenerate pykbroker/kafka_configs.json: every broker and topic config name Kafka defines.

Fetches org.apache.kafka:kafka_2.13 (each version in VERSIONS) and its dependencies from Maven
Central with `mvn dependency:build-classpath` into the ignored .tools/ cache, compiles
DumpConfigs.java against them and runs it; the ConfigDefs it prints are merged into one file of
facts (name, type, default, validator range, documentation, which versions define it). Needs mvn, javac and java
17+ and the network; the broker itself never does.

    python tools/kafka_configs/generate.py [--check]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

VERSIONS = ("3.9.1", "4.4.0")
ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = ROOT / ".tools" / "kafka-configs"
OUTPUT = ROOT / "pykbroker" / "kafka_configs.json"
FIELDS = ("type", "default", "validator", "valid", "min", "max", "documentation")

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.pykbroker</groupId><artifactId>kafka-configs-{version}</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version></dependency>
  </dependencies>
</project>
"""


def run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def dump(version: str) -> dict[str, dict[str, dict]]:
    """The broker and topic ConfigDefs of one Kafka version, as DumpConfigs prints them."""
    work = CACHE / version
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(POM.format(version=version))
    cp_file = work / "classpath.txt"
    run(["mvn", "-q", "-B", f"-Dmaven.repo.local={CACHE / 'm2'}", "dependency:build-classpath",
         f"-Dmdep.outputFile={cp_file}"], work)
    classpath = cp_file.read_text().strip()
    classes = work / "classes"
    classes.mkdir(exist_ok=True)
    run(["javac", "-d", str(classes), "-cp", classpath, str(HERE / "DumpConfigs.java")], work)
    return json.loads(run(["java", "-cp", f"{classes}:{classpath}", "DumpConfigs"], work))


def merge(dumps: dict[str, dict[str, dict[str, dict]]]) -> dict:
    """One row per name: the newest defining version's facts, plus every version that defines it."""
    out: dict = {"generated_by": "tools/kafka_configs/generate.py", "kafka_versions": list(dumps)}
    for kind in ("broker", "topic"):
        rows: dict[str, dict] = {}
        for version, defs in dumps.items():
            for name, facts in defs[kind].items():
                row = {k: facts[k] for k in FIELDS if k in facts}
                row["versions"] = rows.get(name, {}).get("versions", []) + [version]
                rows[name] = row
        out[kind] = dict(sorted(rows.items()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs")
    args = parser.parse_args()
    text = json.dumps(merge({v: dump(v) for v in VERSIONS}), indent=1, sort_keys=False) + "\n"
    if args.check:
        same = OUTPUT.exists() and OUTPUT.read_text() == text
        print(f"{OUTPUT.relative_to(ROOT)}: {'up to date' if same else 'differs'}")
        return 0 if same else 1
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
