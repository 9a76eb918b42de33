#!/usr/bin/env python3
"""Checks deploy/Dockerfile's runtime stage without a Docker engine.

The runtime stage installs a fixed list of Debian packages. This test reads that list from the
Dockerfile, then for each binary the image ships (built on this Debian 12 machine from the same
packages):
  * every library the binary links directly (ELF NEEDED) must belong to a listed package or to
    the base image's libc6 / libstdc++6 / libgcc-s1;
  * every library ldd resolves (the whole tree) must belong to a listed package, a base package,
    or a package apt installs with them (their Depends/Pre-Depends closure);
  * a listed package (other than ca-certificates) that no binary links directly is reported as a
    NOTE (for example libpq5 before the broker links the PostgreSQL store).
It also checks the Dockerfile's shape: multi-stage on Debian 12, a pinned base image (no
`latest`), no -dev package at run time, a numeric non-root USER, the three binaries copied.

Usage: runtime_libs_test.py DOCKERFILE BINARY...
(LEYR_DROP_PACKAGE=name removes one package from the parsed list: the negative test.)
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import os
import re
import shlex
import subprocess
import sys

BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
NON_LIBRARY_PACKAGES = {"ca-certificates"}
SHIPPED_BINARIES = {"leyr-broker", "leyr-callback-shim", "leyr-sandbox"}

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {what}")
    else:
        failed += 1
        print(f"FAIL {what}")


def logical_lines(text):
    """Dockerfile lines with backslash continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") and not current:
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def parse_stages(path):
    """[(from_image, name, [instructions])] and the global ARG defaults."""
    with open(path, encoding="utf-8") as f:
        lines = logical_lines(f.read())
    args, stages = {}, []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif keyword == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            stages.append((image, name, []))
        elif stages:
            stages[-1][2].append((keyword, rest))
    return stages


def apt_packages(instructions):
    """Package names given to `apt-get install` in a stage's RUN instructions."""
    packages = []
    for keyword, rest in instructions:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", rest):
            words = shlex.split(command)
            if "apt-get" not in words or "install" not in words:
                continue
            for word in words[words.index("install") + 1:]:
                if word.startswith("-"):
                    continue
                packages.append(word.split("=")[0])  # "pkg=version" pins
    return packages


def run(args):
    return subprocess.run(args, capture_output=True, text=True, check=False)


def needed_sonames(binary):
    out = run(["readelf", "-d", binary]).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def ldd_paths(binary):
    """soname -> resolved path, as the dynamic loader finds them."""
    result = run(["ldd", binary])
    paths = {}
    for line in result.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+) \(0x", line)
        if m:
            paths[m.group(1)] = m.group(2)
        elif "not found" in line:
            paths[line.split()[0]] = None
    return paths


_package_cache = {}


def package_of(path):
    """The Debian package that owns a library file (tries the merged-/usr aliases)."""
    if path in _package_cache:
        return _package_cache[path]
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        if p.startswith("/usr/lib/"):
            candidates.append(p[len("/usr"):])
        elif p.startswith("/lib/"):
            candidates.append("/usr" + p)
    owner = None
    for candidate in candidates:
        out = run(["dpkg", "-S", candidate])
        if out.returncode == 0:
            for line in out.stdout.splitlines():
                if line.startswith("diversion"):
                    continue
                owner = line.split(":")[0].split(",")[0].strip()
                break
        if owner:
            break
    _package_cache[path] = owner
    return owner


def installed(package):
    out = run(["dpkg-query", "-W", "-f=${Status}", package])
    return out.returncode == 0 and "install ok installed" in out.stdout


def depends_closure(roots):
    """Every package apt would install with `roots` (Depends and Pre-Depends, as installed here)."""
    seen, todo = set(), list(roots)
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        out = run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", package])
        if out.returncode != 0:
            continue
        for clause in out.stdout.split(","):
            clause = clause.strip()
            if not clause:
                continue
            alternatives = [re.sub(r"\(.*?\)|:\w+", "", a).strip() for a in clause.split("|")]
            chosen = next((a for a in alternatives if installed(a)), alternatives[0])
            todo.append(chosen)
    return seen


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    dockerfile, binaries = sys.argv[1], sys.argv[2:]
    stages = parse_stages(dockerfile)

    check(len(stages) >= 2, f"multi-stage Dockerfile ({len(stages)} stages)")
    runtime_image, runtime_name, runtime = stages[-1]
    for image, name, _ in stages:
        check(re.match(r"^debian:(12|bookworm)[.\-\w]*$", image) is not None,
              f"stage {name or '?'} is on Debian 12 ({image})")
        check(":" in image and not image.endswith(":latest"),
              f"stage {name or '?'} base image is pinned by tag ({image})")

    listed = apt_packages(runtime)
    # The negative test drops one package to show that the check notices.
    dropped = os.environ.get("LEYR_DROP_PACKAGE")
    if dropped:
        listed = [p for p in listed if p != dropped]
    print(f"runtime packages: {' '.join(listed)}")
    check(bool(listed), "runtime stage installs packages with apt-get install")
    check(not [p for p in listed if p.endswith("-dev")], "no -dev package in the runtime stage")
    for p in listed:
        check(installed(p), f"runtime package {p} is a real Debian 12 package (installed here)")

    users = [rest.split(":")[0].strip() for k, rest in runtime if k == "USER"]
    check(bool(users) and users[-1].isdigit() and users[-1] != "0",
          f"runtime stage ends as a numeric non-root USER ({users[-1] if users else 'none'})")
    copied = " ".join(rest for k, rest in runtime if k == "COPY" and "--from=" in rest)
    for name in SHIPPED_BINARIES:
        check(name in copied, f"runtime stage copies {name} from the build stage")
    build_packages = [p for _, _, ins in stages[:-1] for p in apt_packages(ins)]
    check(any(p.endswith("-dev") for p in build_packages), "build stage installs -dev packages")

    allowed_direct = set(listed) | BASE_PACKAGES
    allowed_tree = depends_closure(allowed_direct)
    used_packages = set()
    for binary in binaries:
        name = os.path.basename(binary)
        check(os.access(binary, os.X_OK), f"{name}: built ({binary})")
        if not os.access(binary, os.X_OK):
            continue
        check(name in SHIPPED_BINARIES, f"{name}: is one of the image's binaries")
        paths = ldd_paths(binary)
        missing = [s for s, p in paths.items() if p is None]
        check(not missing, f"{name}: ldd resolves every library {missing or ''}")
        for soname in needed_sonames(binary):
            path = paths.get(soname)
            owner = package_of(path) if path else None
            used_packages.add(owner)
            check(owner in allowed_direct,
                  f"{name}: links {soname} from package {owner}, listed in the runtime stage"
                  + ("" if owner in allowed_direct else f"  <-- add {owner} to deploy/Dockerfile"))
        for soname, path in sorted(paths.items()):
            if path is None:
                continue
            owner = package_of(path)
            if owner not in allowed_tree:
                check(False, f"{name}: needs {soname} ({path}) from {owner}, which the runtime "
                             "packages do not bring in")
        check(True, f"{name}: all {len(paths)} libraries ldd lists come with the runtime packages")

    for p in listed:
        if p in NON_LIBRARY_PACKAGES:
            continue
        if p not in used_packages:
            print(f"NOTE runtime package {p} provides no library any binary links directly")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
