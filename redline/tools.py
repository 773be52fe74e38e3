"""Fetch the pinned upstream binaries (Prometheus, Alertmanager, exporters...) into .tools/bin.

The versions live in tools/versions.yml. Packages come from Debian's archive through a private apt
configuration under .tools/apt (the system's apt sources and state are never touched); each binary's
version is checked after unpacking. A binary already in .tools/bin with a satisfying version is kept,
so a second run fetches nothing. Without apt, binaries from PATH (or REDLINE_BIN_<NAME>) are used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from redline import safe_yaml
from redline.paths import ROOT

VERSIONS_FILE = ROOT / "tools" / "versions.yml"
TOOLS_DIR = Path(os.environ.get("REDLINE_TOOLS_DIR", ROOT / ".tools"))
BIN_DIR = TOOLS_DIR / "bin"
MANIFEST_NAME = "manifest.json"  # in the tools folder: what each fetched binary is


def binary(name: str) -> str | None:
    """Path of a pinned program: .tools/bin (or REDLINE_TOOLS_DIR/bin) first, then PATH; None if neither."""
    local = BIN_DIR / name
    return str(local) if local.exists() else shutil.which(name)


def require(name: str, error: type[Exception]) -> str:
    """binary(name), or `error` with the line that tells the user how to get it."""
    found = binary(name)
    if found is None:
        raise error(f"{name} not found in {BIN_DIR} or on PATH; run 'make setup'")
    return found


class ToolError(Exception):
    """A tool could not be fetched or does not satisfy its pinned version."""


@dataclass(frozen=True)
class Tool:
    name: str
    package: str
    path: str
    spec: SpecifierSet
    version_args: list[str] = field(default_factory=lambda: ["--version"])
    version_from_package: bool = False
    data: tuple[str, ...] = ()  # folders of the package the binary reads at a fixed absolute path

    def missing_data(self) -> list[str]:
        return [path for path in self.data if not (Path("/") / path).is_dir()]


def _read_versions(path: Path) -> dict:
    try:
        data = safe_yaml.load_file(path)
    except safe_yaml.YamlInputError as err:
        raise ToolError(f"{path}: {err.problem}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tools"), dict):
        raise ToolError(f"{path}: expected a mapping with 'archive' and 'tools'")
    return data


def _pinned(where: str, entry: object, allowed: set[str]) -> SpecifierSet:
    """Check one entry of tools: or sources: (package, path and version strings); its version spec."""
    if not isinstance(entry, dict):
        raise ToolError(f"{where}: expected a mapping")
    unknown = set(entry) - allowed
    if unknown:
        raise ToolError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    for key in ("package", "path", "version"):
        if not isinstance(entry.get(key), str):
            raise ToolError(f"{where}.{key}: missing or not a string")
    try:
        return SpecifierSet(entry["version"])
    except InvalidSpecifier as err:
        raise ToolError(f"{where}.version: {entry['version']!r} is not a version constraint") from err


TOOL_FIELDS = {"package", "path", "version", "version_args", "version_from", "data"}


def load_versions(path: Path = VERSIONS_FILE) -> tuple[dict, list[Tool]]:
    """Parse tools/versions.yml; errors name the file, the tool and the field."""
    data = _read_versions(path)
    tools = []
    for name, entry in data["tools"].items():
        spec = _pinned(f"{path}: tools.{name}", entry, TOOL_FIELDS)
        tools.append(
            Tool(
                name=name,
                package=entry["package"],
                path=entry["path"],
                spec=spec,
                version_args=list(entry.get("version_args", ["--version"])),
                version_from_package=entry.get("version_from") == "package",
                data=tuple(entry.get("data", [])),
            )
        )
    return data.get("archive", {}), tools


def parse_version(text: str) -> Version | None:
    """First dotted version number in a program's version output ('version 3.5.3+ds1' -> 3.5.3)."""
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", text)
    if not match:
        return None
    try:
        return Version(match.group(1))
    except InvalidVersion:
        return None


def _manifest() -> dict:
    try:
        return dict(json.loads((TOOLS_DIR / MANIFEST_NAME).read_text()))
    except (OSError, ValueError):
        return {}


def installed_version(tool: Tool, binary: Path | str) -> Version | None:
    """The version a binary reports (or, where it reports none, the package version recorded at fetch)."""
    if tool.version_from_package:
        recorded = _manifest().get(tool.name, {})
        # Recorded relative to the tools folder (older manifests: absolute), so a moved checkout keeps it.
        where = TOOLS_DIR / str(recorded.get("binary", ""))
        if recorded and where.resolve() == Path(binary).resolve():
            return parse_version(recorded.get("package_version", ""))
        return None
    try:
        out = subprocess.run(
            [str(binary), *tool.version_args], capture_output=True, text=True, timeout=20, check=False
        )
    except OSError:
        return None
    return parse_version(out.stdout + out.stderr)


def check_tool(tool: Tool, binary: Path | str, versions_file: Path = VERSIONS_FILE) -> str:
    """Return the version string when binary satisfies the pin, else raise ToolError naming the problem."""
    if not Path(binary).exists():
        raise ToolError(f"{tool.name}: {binary} is missing; run 'make setup'")
    version = installed_version(tool, binary)
    if version is None:
        raise ToolError(f"{tool.name}: could not read a version from {binary}")
    if version not in tool.spec:
        raise ToolError(f"{tool.name}: {binary} is version {version}; {versions_file} requires {tool.spec}")
    return str(version)


def check_all(tools: list[Tool], versions_file: Path = VERSIONS_FILE) -> dict[str, str]:
    """Check the installed binaries without fetching anything; raises on the first problem."""
    for tool in tools:
        for folder in tool.missing_data():
            raise ToolError(f"{tool.name}: /{folder} (package {tool.package}) is missing; run 'make setup'")
    return {tool.name: check_tool(tool, BIN_DIR / tool.name, versions_file) for tool in tools}


class PrivateApt:
    """apt-get with every directory under .tools/apt, so nothing of the system's apt changes."""

    def __init__(self, archive: dict) -> None:
        self.base = TOOLS_DIR / "apt"
        self.archive = archive

    def options(self) -> list[str]:
        b = self.base
        return [
            f"-o=Dir::Etc::sourcelist={b / 'sources.list'}",
            "-o=Dir::Etc::sourceparts=/nonexistent",
            f"-o=Dir::State={b / 'state'}",
            f"-o=Dir::State::lists={b / 'lists'}",
            "-o=Dir::State::status=/dev/null",
            f"-o=Dir::Cache={b / 'cache'}",
            "-o=Debug::NoLocking=1",
            "-o=APT::Sandbox::User=root" if os.geteuid() == 0 else "-o=APT::Sandbox::User=",
        ]

    def prepare(self) -> None:
        for sub in ("lists/partial", "cache/archives/partial", "state", "debs"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        keyring = self.archive.get("keyring", "/usr/share/keyrings/debian-archive-keyring.gpg")
        if not Path(keyring).exists():
            raise ToolError(f"the Debian keyring {keyring} is missing (package debian-archive-keyring)")
        where = f"{self.archive['url']} {self.archive['suite']} {self.archive.get('component', 'main')}"
        # deb-src: the upstream tarballs of `sources:` in tools/versions.yml come from source packages
        (self.base / "sources.list").write_text(
            f"deb [signed-by={keyring}] {where}\ndeb-src [signed-by={keyring}] {where}\n"
        )

    def update(self) -> None:
        print(f"==> apt-get update ({self.archive['suite']}, private lists in {self.base})", flush=True)
        self._run(["apt-get", *self.options(), "update"])

    def candidate(self, package: str) -> str:
        out = subprocess.run(
            ["apt-cache", *self.options(), "policy", package], capture_output=True, text=True, check=False
        )
        match = re.search(r"Candidate:\s*(\S+)", out.stdout)
        if not match or match.group(1) == "(none)":
            raise ToolError(f"package {package} is not in Debian {self.archive['suite']}")
        return match.group(1)

    def download(self, package: str) -> Path:
        debs = self.base / "debs"
        print(f"==> downloading {package}", flush=True)
        self._run(["apt-get", *self.options(), "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise ToolError(f"apt-get download {package} produced no .deb in {debs}")
        return found[-1]

    def download_upstream_tarball(self, package: str, folder: Path) -> Path:
        """The upstream (orig) tarball of a source package, its checksum verified by apt."""
        print(f"==> downloading the upstream tarball of source package {package}", flush=True)
        command = ["apt-get", *self.options(), "source", "--download-only", "--tar-only", package]
        self._run(command, cwd=folder)
        found = sorted(folder.glob(f"{package}_*.orig.tar.*"))
        if not found:
            raise ToolError(f"apt-get source --tar-only {package} produced no .orig.tar in {folder}")
        return found[-1]

    @staticmethod
    def _run(cmd: list[str], cwd: Path | None = None) -> None:
        # apt prints its own progress; keep it visible.
        result = subprocess.run(cmd, cwd=cwd, check=False)
        if result.returncode != 0:
            raise ToolError(f"{' '.join(cmd[:1] + cmd[-2:])} failed with exit status {result.returncode}")


def fetch_all(
    tools: list[Tool], archive: dict, force: bool = False, versions_file: Path = VERSIONS_FILE
) -> dict[str, str]:
    """Make every tool available in .tools/bin; returns name -> version. Fetches only what is missing."""
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    versions: dict[str, str] = {}
    missing: list[Tool] = []
    for tool in tools:
        target = BIN_DIR / tool.name
        if target.exists() and not force and not tool.missing_data():
            try:
                versions[tool.name] = check_tool(tool, target, versions_file)
                continue
            except ToolError as err:
                print(f"==> {err}; fetching again", flush=True)
        missing.append(tool)
    if not missing:
        return versions
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return versions | _use_path_binaries(missing, versions_file)
    apt = PrivateApt(archive)
    apt.prepare()
    apt.update()
    manifest = _manifest()
    with tempfile.TemporaryDirectory(prefix="redline-tools-") as tmp:
        unpacked: dict[str, Path] = {}
        for position, tool in enumerate(missing, 1):
            print(f"==> [{position}/{len(missing)}] {tool.name} from {tool.package}", flush=True)
            if tool.package not in unpacked:
                deb = apt.download(tool.package)
                root = Path(tmp) / tool.package
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
                unpacked[tool.package] = root
            source = unpacked[tool.package] / tool.path
            if not source.exists():
                raise ToolError(f"{tool.name}: {tool.path} is not in package {tool.package}")
            target = BIN_DIR / tool.name
            partial = target.with_suffix(".partial")
            shutil.copy2(source.resolve(), partial)
            partial.chmod(0o755)
            partial.replace(target)
            for folder in tool.data:
                _install_data(unpacked[tool.package] / folder, Path("/") / folder)
            manifest[tool.name] = {
                "binary": str(target.relative_to(TOOLS_DIR)),
                "package_version": apt.candidate(tool.package),
            }
            (TOOLS_DIR / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            versions[tool.name] = check_tool(tool, target, versions_file)
    return versions


SRC_DIR = TOOLS_DIR / "src"


@dataclass(frozen=True)
class Source:
    """A folder of an upstream source tree, from a Debian source package's upstream tarball."""

    name: str
    package: str
    path: str
    spec: SpecifierSet


def load_sources(path: Path = VERSIONS_FILE) -> list[Source]:
    """The `sources:` of tools/versions.yml; errors name the file, the entry and the field."""
    sources = []
    for name, entry in (_read_versions(path).get("sources") or {}).items():
        spec = _pinned(f"{path}: sources.{name}", entry, {"package", "path", "version"})
        sources.append(Source(name, entry["package"], entry["path"].strip("/"), spec))
    return sources


def source_dir(name: str) -> Path | None:
    """The unpacked folder of a `sources:` entry (.tools/src/NAME), or None before 'make setup'."""
    folder = SRC_DIR / name
    return folder if (folder / ".version").is_file() else None


def fetch_sources(sources: list[Source], archive: dict, force: bool = False) -> dict[str, str]:
    """Unpack each source's folder into .tools/src/NAME; returns name -> upstream version. Fetches only
    what is missing or no longer satisfies its pin."""
    versions: dict[str, str] = {}
    missing = []
    for source in sources:
        marker = SRC_DIR / source.name / ".version"
        recorded = parse_version(marker.read_text()) if marker.is_file() else None
        if recorded is not None and recorded in source.spec and not force:
            versions[source.name] = str(recorded)
        else:
            missing.append(source)
    if not missing:
        return versions
    apt = PrivateApt(archive)
    apt.prepare()
    apt.update()
    for source in missing:
        with tempfile.TemporaryDirectory(prefix="redline-src-") as tmp:
            tarball = apt.download_upstream_tarball(source.package, Path(tmp))
            version = parse_version(tarball.name.split("_", 1)[1])
            if version is None or version not in source.spec:
                raise ToolError(f"{source.name}: {tarball.name} does not satisfy {source.spec}")
            unpacked = Path(tmp) / "unpacked"
            unpacked.mkdir()
            subprocess.run(["tar", "-xf", str(tarball), "-C", str(unpacked)], check=True)
            found = [p for p in unpacked.glob(f"*/{source.path}") if p.is_dir()]
            if not found:
                raise ToolError(f"{source.name}: {source.path} is not in {tarball.name}")
            target = SRC_DIR / source.name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(found[0], target)
            (target / ".version").write_text(f"{version}\n")
            versions[source.name] = str(version)
    return versions


def _install_data(source: Path, target: Path) -> None:
    """Install a package's data folder where its binary reads it (Debian's alertmanager reads its
    default templates from /usr/share/prometheus/alertmanager, a path no flag changes)."""
    if target.is_dir():
        return
    if os.geteuid() != 0:
        raise ToolError(
            f"{target} is missing and only root can create it; run 'sudo make setup' once, "
            f"or copy it from the package: sudo cp -r {source} {target.parent}/"
        )
    print(f"==> installing {target} (read by the binary at this fixed path)", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target)


def _use_path_binaries(tools: list[Tool], versions_file: Path) -> dict[str, str]:
    """Without apt: link binaries from REDLINE_BIN_<NAME> or PATH into .tools/bin after checking them."""
    versions = {}
    for tool in tools:
        env_name = "REDLINE_BIN_" + tool.name.upper().replace("-", "_")
        candidate = os.environ.get(env_name) or shutil.which(tool.name)
        if not candidate:
            raise ToolError(
                f"{tool.name}: apt-get is not available here and no {tool.name} is on PATH; "
                f"install it or set {env_name}=/path/to/{tool.name}"
            )
        if tool.version_from_package:
            tool = Tool(tool.name, tool.package, tool.path, tool.spec, ["-version"], False)
        versions[tool.name] = check_tool(tool, candidate, versions_file)
        target = BIN_DIR / tool.name
        target.unlink(missing_ok=True)
        target.symlink_to(Path(candidate).resolve())
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="redline setup-tools",
        description="Fetch the pinned binaries listed in tools/versions.yml into .tools/bin "
        "(from Debian's archive through a private apt configuration) and check their versions.",
    )
    parser.add_argument("--force", action="store_true", help="fetch again even when a good binary is present")
    parser.add_argument("--check", action="store_true", help="only check installed binaries, fetch nothing")
    parser.add_argument("--versions-file", type=Path, default=VERSIONS_FILE, help="constraints file")
    args = parser.parse_args(argv)
    try:
        archive, tools = load_versions(args.versions_file)
        if args.check:
            versions = check_all(tools, args.versions_file)
        else:
            versions = fetch_all(tools, archive, force=args.force, versions_file=args.versions_file)
            sources = load_sources(args.versions_file)
            if sources and shutil.which("apt-get") is not None:
                for name, version in fetch_sources(sources, archive, force=args.force).items():
                    print(f"    {name} (source)  {version}")
    except ToolError as err:
        print(f"redline setup-tools: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"redline setup-tools: {err}", file=sys.stderr)
        return 1
    width = max(len(name) for name in versions)
    for name in sorted(versions):
        print(f"    {name:<{width}}  {versions[name]}")
    print(f"==> {len(versions)} tools ready in {BIN_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
