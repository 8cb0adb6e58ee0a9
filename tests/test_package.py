"""The package as a whole: it works installed from a wheel, its modules form layers, its functions fit a screen."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "vggnet"

# The layers, low to high: a module may import from its own layer and those below, never from above. A package is
# one name (its modules share its layer); the rest are single modules. Three tiers, at a glance in src/vggnet/: the
# base (base/, version), the core (formats/, network/, data/, engines/, inference/, losses/, training/, export/) and
# the commands (web/, then commands/, bench/, reproduce/, serving/, inside/, cluster/, the command line). The
# packages of one layer are rooms apart: none imports another (serving and inside share web/, below both, and the
# serve command mounts the inside page on the service's app).
BASE = [("version", "base", "recipes")]
CORE = [
    ("formats",),
    ("network",),
    ("data", "engines"),
    ("inference",),
    ("losses", "training"),
    ("export",),
]
COMMANDS = [
    ("web",),
    ("bench", "reproduce", "serving", "inside"),
    ("cluster",),
    ("commands",),
    ("cli",),
    ("__main__", "__init__"),
]
LAYER_ORDER = BASE + CORE + COMMANDS
TIERS = {name: tier for tier, layers in (("base", BASE), ("core", CORE), ("commands", COMMANDS)) for names in layers
         for name in names}  # fmt: skip
LAYERS = {name: rank for rank, names in enumerate(LAYER_ORDER) for name in names}


def module_name(path: Path) -> str:
    """``data.datasets`` for src/vggnet/data/datasets.py, ``data`` for its __init__.py."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, tuple[Path, ast.Module]]:
    """Every module of the package, in every subpackage, by dotted name below ``vggnet``."""
    return {module_name(p): (p, ast.parse(p.read_text())) for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, tree: ast.Module) -> set[str]:
    """The vggnet modules a module imports (relative imports resolved; ``from . import x`` names module x)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "__init__":
        package = []
    known = modules_cache()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = package[: len(package) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                candidate = f"{target}.{alias.name}" if target else alias.name
                found.add(candidate if candidate in known else target or "__init__")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vggnet."):
            found.add(node.module[len("vggnet.") :])
    return {f for f in found if f and f != name}


_CACHE: dict = {}


def modules_cache() -> set[str]:
    if not _CACHE:
        _CACHE["names"] = set(modules())
    return _CACHE["names"]


def layer(name: str) -> int:
    top = name.split(".")[0]
    assert top in LAYERS, f"{name} has no layer in LAYERS: give it one"
    return LAYERS[top]


def test_no_function_is_longer_than_a_screen():
    long = [
        f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, (_, tree) in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long, long


def test_every_subpackage_is_walked_and_says_what_it_holds():
    found = modules()
    packages = ("base", "data", "formats", "network", "inference", "inside", "training", "reproduce", "serving",
                "engines", "export", "bench", "losses", "web")  # fmt: skip
    for package in (*packages, "commands"):
        assert package in found, f"{package}/ is not a package"
        doc = ast.get_docstring(found[package][1]) or ""
        assert len(doc) > 150 and "import" in doc, f"{package}/__init__.py does not say what it holds and imports"
    assert any(n.startswith("serving.") for n in found) and any(n.startswith("data.") for n in found)


def test_every_submodule_vggnet_names_imports():
    import importlib

    import vggnet

    for name in vggnet.SUBMODULES:
        assert (PACKAGE / name / "__init__.py").is_file(), f"vggnet.SUBMODULES names {name}, which is not a package"
        assert getattr(vggnet, name) is importlib.import_module(f"vggnet.{name}")
    missing = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() and TIERS[p.name] == "core"]
    assert set(missing) <= set(vggnet.SUBMODULES), sorted(set(missing) - set(vggnet.SUBMODULES))


def test_modules_import_each_other_without_cycles_or_back_arrows():
    graph = {name: imports_of(name, path, tree) for name, (path, tree) in modules().items()}
    # a package's __init__ re-exports its modules: it is the package's face, not a node of its own cycle
    done, path = set(), []

    def visit(node: str) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done or node not in graph:
            return
        path.append(node)
        for dep in sorted(graph[node]):
            if dep == node.rsplit(".", 1)[0] and node.count("."):  # a module may not import its own package...
                raise AssertionError(f"{node} imports its own package {dep}: import the module instead")
            visit(dep)
        path.pop()
        done.add(node)

    for node in graph:
        visit(node)
    back = [
        f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})"
        for name, deps in graph.items()
        for dep in deps
        if layer(dep) > layer(name)
    ]
    assert not back, back
    beside = [
        f"{name} imports {dep}: {name.split('.')[0]} and {dep.split('.')[0]} are rooms of one layer, apart"
        for name, deps in graph.items()
        for dep in deps
        if layer(dep) == layer(name) and dep.split(".")[0] != name.split(".")[0]
    ]
    assert not beside, beside
    # the base stands alone, and the network stands on the base only (its weights' formats below it)
    assert all(dep.startswith("base.") for name, deps in graph.items() if name.startswith("base.") for dep in deps)
    for name in (n for n in graph if n.startswith(("network", "formats"))):
        assert not [d for d in graph[name] if d.startswith("data")], f"{name} imports the data layer"


def test_every_module_fits_and_every_folder_says_what_it_holds():
    big = {name: len(path.read_text().splitlines()) for name, (path, _) in modules().items()}
    assert not {n: lines for n, lines in big.items() if lines > 450}, "a module over 450 lines is two modules"
    roots = [p.name for p in PACKAGE.iterdir() if p.suffix == ".py"]
    assert len(roots) <= 16 and not [r for r in roots if r.startswith("bench")], roots  # benchmarking in bench/
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        assert TIERS[folder.name] and len(ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))) > 150


def test_the_readmes_layout_names_every_folder_and_module():
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([\w/]+(?:\.py)?)`", layout))
    rows = {}  # a folder's row: the modules it names (a module of the same name in another folder does not count)
    for line in layout.splitlines():
        if found := re.match(r"\| `(\w+/)` \|", line):
            rows[found.group(1)] = set(re.findall(r"`(\w+)(?:\.py)?`", line))
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if path.name in ("__init__.py", "__main__.py", "version.py") or "recipes" in rel.parts:
            continue
        folder = f"{rel.parts[0]}/" if len(rel.parts) > 1 else None
        if folder is None and path.name not in named or folder and path.stem not in rows.get(folder, set()):
            missing.append(rel.as_posix())
    assert not missing, f"README's layout does not say what these hold: {missing}"


def test_each_concept_is_defined_in_one_place():
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py")}
    where = [p.name for p, text in sources.items() if "/proc/cpuinfo" in text.replace('"/proc/cpuinfo")', "")]
    assert [p.relative_to(PACKAGE).as_posix() for p in sources if 'Path("/proc/cpuinfo")' in sources[p]] == [
        "base/hardware.py"
    ], where
    assert [p.name for p, text in sources.items() if "40_000_000" in text] == ["settings.py"]  # the pixel limit
    shape = [p.name for p, text in sources.items() if re.search(r"\(\s*\"config\",\s*\"num_classes\"", text)]
    assert shape == [], shape  # the shape keys are ModelShape's fields (base/shape.py), never a tuple again
    timers = [p.name for p, text in sources.items() if "time.perf_counter()" in text and "def take_turns" in text]
    assert timers == ["timing.py"]


@pytest.mark.slow
def test_an_installed_wheel_runs_with_its_recipes_from_another_directory(tmp_path):
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("vggnet-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import vggnet; print(vggnet.__file__)"], cwd=elsewhere, env=env, capture_output=True
    )
    assert Path(where.stdout.decode().strip()).is_relative_to(site)
    assert (site / "vggnet" / "serving" / "index.html").is_file()  # the service's page travels with the package
    assert (site / "vggnet" / "inside" / "page.html").is_file()
    for package in ("data", "formats", "inside", "training", "reproduce", "engines"):  # every subpackage in the wheel
        assert (site / "vggnet" / package / "__init__.py").is_file()
    args = ["train", "--recipe", "fashion_mnist", "--dataset", "synthetic", "--width", "0.0625", "--epochs", "1"]
    args += ["--max-steps", "1", "--no-progress", "--no-tensorboard", "--out", "run"]
    script = site / "bin" / "vggnet"
    for command in ([str(script)], [sys.executable, "-m", "vggnet"]):
        proc = subprocess.run([*command, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "stopped after 1 steps" in proc.stdout and (elsewhere / "run" / "last.pt").is_file()
        (elsewhere / "run" / "last.pt").unlink()


def test_the_command_line_is_thin_and_the_formatter_formats():
    cli = (PACKAGE / "cli.py").read_text()
    assert len(cli.splitlines()) < 350
    markers = [f"{p.relative_to(PACKAGE)}" for p in PACKAGE.rglob("*.py") for line in p.read_text().splitlines()
               if "fmt: skip" in line and not line.lstrip().startswith("#")]  # fmt: skip
    assert len(markers) < 10, markers
    # each setting is declared once: no tables of helps, ranges or runtime names beside the dataclasses
    for name in ("HELP = {", "RANGES", "RUNTIME = (", "RESULT_SETTINGS"):
        assert not any(name in p.read_text() for p in PACKAGE.rglob("*.py")), name
