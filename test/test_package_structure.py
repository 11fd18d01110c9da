"""The package's import structure, read from the source: no import cycles (lazy imports included),
and rclpy only in the modules that README names."""
import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "hydranet_ros"
RCLPY_MODULES = {"hydranet_ros.ros.perception_node", "hydranet_ros.ros.managed_perception_node",
                 "hydranet_ros.ros.bond",
                 "hydranet_ros.apps.demo", "hydranet_ros.apps.soak",
                 "hydranet_ros.apps.node_benchmark", "hydranet_ros.apps.cameras_benchmark"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module name an import statement in the file names, at any depth (lazy imports count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # a submodule imported by name
    return names


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {n for n in imported_names(path) if n in files and n != name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state = {}  # 1 on the current path, 2 done

    def visit(node, path):
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target, path + [target])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 50 and any(graph.values())  # the walk found the package and its imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_lazy_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_only_the_node_and_the_apps_that_talk_to_it_import_rclpy():
    importers = {module_name(p) for p in PACKAGE.rglob("*.py")
                 if any(n == "rclpy" or n.startswith("rclpy.") for n in imported_names(p))}
    assert importers == RCLPY_MODULES


def test_command_line_verbs_live_in_cli_only():
    """Library modules keep no argparse glue: add_arguments/run functions and argparse imports are cli/'s."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        tree = ast.parse(path.read_text())
        names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        if names & {"add_arguments", "run"} or "argparse" in imported_names(path):
            offenders.append(module_name(path))
    assert offenders == [], offenders
