"""Classpaths of the JVM services, resolved by Maven from the repo's pom.xml and cached."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.settings import PROJECT_ROOT

POM = PROJECT_ROOT / "pom.xml"
PROFILES = ("mongo", "kafka", "connect", "debezium", "spark")


class JvmError(RuntimeError):
    """Java or Maven is missing or a classpath could not be resolved."""


def java_executable() -> str:
    java = shutil.which("java")
    if not java:
        raise JvmError("Java 17+ is needed and `java` is not on PATH: install a JDK (apt-get install openjdk-17-jdk)")
    return java


def classpath(profile: str, cache_dir: Path | None = None, *, quiet: bool = True) -> str:
    """The classpath of a pom.xml profile; resolved once per pom version (Maven downloads on first use)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown JVM profile {profile!r}; expected one of {PROFILES}")
    cache_dir = cache_dir or PROJECT_ROOT / ".local" / "classpath"
    cached = _cache_file(profile, cache_dir)
    if resolved(profile, cache_dir):
        return cached.read_text().strip()
    mvn = shutil.which("mvn")
    if not mvn:
        raise JvmError("Maven is needed to fetch the JVM parts and `mvn` is not on PATH: apt-get install maven")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    print(f"[stack] resolving the '{profile}' classpath with Maven (first run downloads it) ...", file=sys.stderr)
    cmd = [mvn, "-B", "-f", str(POM), "-P", profile, "dependency:build-classpath", f"-Dmdep.outputFile={tmp}"]
    if quiet:
        cmd.insert(1, "-q")
    result = subprocess.run(cmd, capture_output=quiet, text=True)
    if result.returncode != 0:
        tail = (result.stdout or "")[-2000:] if quiet else ""
        raise JvmError(f"mvn could not resolve profile '{profile}' of {POM}:\n{tail}")
    tmp.replace(cached)
    return cached.read_text().strip()


def _cache_file(profile: str, cache_dir: Path) -> Path:
    return cache_dir / f"{profile}-{hashlib.sha256(POM.read_bytes()).hexdigest()[:12]}.txt"


def resolved(profile: str, cache_dir: Path | None = None) -> bool:
    """True when :func:`classpath` of ``profile`` needs no Maven run (resolved for this pom, every jar there)."""
    cached = _cache_file(profile, cache_dir or PROJECT_ROOT / ".local" / "classpath")
    if not cached.exists():
        return False
    return all(Path(entry).exists() for entry in cached.read_text().strip().split(":"))


def launcher_classpath(sources: Path, profile: str, cache_dir: Path | None = None) -> str:
    """The classpath that runs our Java sources in ``sources`` (a launcher and its parts) on ``profile``'s
    jars: compiled with javac once per content of the sources and the jars, under ``.local/classes``."""
    jars = classpath(profile)
    files = sorted(sources.glob("*.java"))
    digest = hashlib.sha256(jars.encode())
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    out = (cache_dir or PROJECT_ROOT / ".local" / "classes") / f"{sources.name}-{digest.hexdigest()[:12]}"
    if not out.exists():
        javac = shutil.which("javac")
        if not javac:
            raise JvmError("javac is needed to build the local stack's Java launcher and is not on PATH: install a "
                           "JDK, not only a JRE (Debian: apt-get install openjdk-17-jdk-headless)")
        building = out.with_name(f"{out.name}.building-{os.getpid()}")  # two stacks starting at once: one wins
        result = subprocess.run([javac, "-nowarn", "-encoding", "UTF-8", "-cp", jars, "-d", str(building),
                                 *map(str, files)], capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise JvmError(f"javac could not compile {sources}:\n{(result.stderr or result.stdout)[-2000:]}")
        try:
            building.rename(out)
        except OSError:  # the other one was first: same sources, same classes
            shutil.rmtree(building, ignore_errors=True)
    return f"{out}:{jars}"


def spark_jars(cache_dir: Path | None = None) -> str:
    """Comma-separated jars for ``spark.jars``: Spark's Kafka source and what it needs beyond pyspark."""
    return classpath("spark", cache_dir).replace(":", ",")


if __name__ == "__main__":
    if sys.argv[1:] == ["spark-jars"]:
        # `python -m stack.jvm spark-jars`: the value for spark-submit's --jars.
        print(spark_jars())
        sys.exit(0)
    # `python -m stack.jvm` fetches every profile, with Maven's progress visible.
    for name in PROFILES:
        classpath(name, quiet=False)
        print(f"[stack] {name}: ok", file=sys.stderr)
