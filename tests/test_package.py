"""The package as a whole: it works installed from a wheel, its modules form layers, its functions fit a screen."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "vggnet"


def modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in PACKAGE.glob("*.py")}


def test_no_function_is_longer_than_a_screen():
    long = [
        f"{name}.py:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80
    ]
    assert not long, long


def test_modules_import_each_other_without_cycles():
    graph = {}
    for name, tree in modules().items():
        graph[name] = {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        } - {name}
    done, path = set(), []

    def visit(node: str) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done or node not in graph:
            return
        path.append(node)
        for dep in sorted(graph[node]):
            visit(dep)
        path.pop()
        done.add(node)

    for node in graph:
        visit(node)
    # the lowest layers stand alone
    assert graph["configs"] == set() and graph["files"] == set()
    assert graph["model"] <= {"configs", "weights"} and "train" not in graph["data"]


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
    args = ["train", "--recipe", "fashion_mnist", "--dataset", "synthetic", "--width", "0.0625", "--epochs", "1"]
    args += ["--max-steps", "1", "--no-progress", "--no-tensorboard", "--out", "run"]
    script = site / "bin" / "vggnet"
    for command in ([str(script)], [sys.executable, "-m", "vggnet"]):
        proc = subprocess.run([*command, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "stopped after 1 steps" in proc.stdout and (elsewhere / "run" / "last.pt").is_file()
        (elsewhere / "run" / "last.pt").unlink()
