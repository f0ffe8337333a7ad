"""Mutation testing of the core modules: inject one small bug at a time, run the fast tests that
cover the module, and count how many injected bugs they notice.

Not part of CI (minutes, not seconds). Run from the repository root:

    .venv/bin/python -m scripts.mutate                      # every core module
    .venv/bin/python -m scripts.mutate --module training/gate.py --module bundle/schema.py
    .venv/bin/python -m scripts.mutate --list               # the mutants only, no tests run

How it works, and why:
- Mutants come from the module's AST (stdlib `ast`), in a fixed traversal order, so two runs on
  the same source give the same mutants and the same score. Operators: comparison boundaries
  (`<` <-> `<=`, `>` <-> `>=`, `==` <-> `!=`, `in` <-> `not in`, `is` <-> `is not`), `and` <-> `or`,
  a dropped `not` or unary minus, arithmetic and bitwise operators, numbers nudged by one, booleans
  flipped, compared string literals changed, `min` <-> `max`, `any` <-> `all`, a `raise` or a
  bare call statement replaced by `pass`. Docstrings, annotations, imports and f-strings (error
  messages) are not mutated.
- The repository's product packages and tests are copied to a temporary directory; each mutant is
  written there, never in the working tree, and the original text is restored after each run.
- A parent process imports pytest and the heavy libraries once and forks one child per mutant,
  which imports the (mutated) product code fresh and runs the mapped tests with `-x`; a child that
  runs over `--timeout` seconds is killed and counts as killed (the bug was noticed: it hangs).
- Mutants that no behaviour can tell apart from the original are listed, each with the reason, in
  `scripts/mutation-equivalents.toml`; the score excludes them.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import os
import shutil
import signal
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQUIVALENTS = Path(__file__).with_name("mutation-equivalents.toml")
PRODUCT = (
    "bundle",
    "training",
    "predictor",
    "monitor",
    "retrainer",
    "marketdata",
    "transformer",
    "serving",
    "rollout",
)
COPIED = (*PRODUCT, "tests", "pyproject.toml")

# Core module -> the fast (unit) tests that exercise it. Paths that do not exist yet are skipped.
MODULES: dict[str, tuple[str, ...]] = {
    "bundle/transform.py": ("tests/unit/bundle", "tests/unit/training/test_splits.py"),
    "bundle/schema.py": ("tests/unit/bundle", "tests/unit/training/test_evaluation.py"),
    "bundle/io.py": ("tests/unit/bundle",),
    "bundle/runtime.py": ("tests/unit/bundle", "tests/unit/monitor"),
    "bundle/outputs.py": ("tests/unit/bundle", "tests/unit/predictor"),
    "bundle/distribution.py": ("tests/unit/bundle",),
    "bundle/online.py": ("tests/unit/bundle/test_online.py",),
    "bundle/har.py": ("tests/unit/bundle/test_online.py",),
    "bundle/replay.py": ("tests/unit/bundle/test_online.py",),
    "predictor/calibration.py": ("tests/unit/predictor/test_calibration.py",),
    "monitor/calibration.py": ("tests/unit/monitor/test_calibration.py",),
    "monitor/state_configmap.py": ("tests/unit/monitor/test_state_configmap.py",),
    "training/evidence.py": ("tests/unit/training/test_point_weight.py",),
    "training/gate.py": ("tests/unit/training/test_gate.py", "tests/unit/training/test_gate_intervals.py"),
    "training/quantize.py": ("tests/unit/training/test_quantize.py",),
    "marketdata/sanity.py": ("tests/unit/training/test_sanity.py",),
    "training/evaluation.py": ("tests/unit/training/test_evaluation.py",),
    "training/calibration.py": (
        "tests/unit/training/test_point_weight.py",
        "tests/unit/training/test_scores.py",
        "tests/unit/training/test_calibration_window.py",
        "tests/unit/bundle",
    ),
    "training/scores.py": ("tests/unit/training", "tests/unit/bundle"),
    "training/splits.py": ("tests/unit/training/test_splits.py",),
    "monitor/realized.py": ("tests/unit/monitor",),
    "predictor/codecs.py": ("tests/unit/predictor",),
    "retrainer/kube.py": ("tests/unit/retrainer",),
}

# Imported once in the parent so that each forked child only imports the product code.
PRELOAD = (
    "numpy",
    "pandas",
    "pydantic",
    "pydantic_settings",
    "onnxruntime",
    "onnx",
    "httpx",
    "sklearn.preprocessing",
    "prometheus_client",
    "kserve.errors",
    "kserve.protocol.infer_type",
    "starlette.applications",
)

COMPARE_SWAP: dict[type, tuple[type, str, str]] = {
    ast.Lt: (ast.LtE, "<", "<="),
    ast.LtE: (ast.Lt, "<=", "<"),
    ast.Gt: (ast.GtE, ">", ">="),
    ast.GtE: (ast.Gt, ">=", ">"),
    ast.Eq: (ast.NotEq, "==", "!="),
    ast.NotEq: (ast.Eq, "!=", "=="),
    ast.In: (ast.NotIn, "in", "not in"),
    ast.NotIn: (ast.In, "not in", "in"),
    ast.Is: (ast.IsNot, "is", "is not"),
    ast.IsNot: (ast.Is, "is not", "is"),
}
BINOP_SWAP: dict[type, tuple[type, str, str]] = {
    ast.Add: (ast.Sub, "+", "-"),
    ast.Sub: (ast.Add, "-", "+"),
    ast.Mult: (ast.Div, "*", "/"),
    ast.Div: (ast.Mult, "/", "*"),
    ast.FloorDiv: (ast.Mult, "//", "*"),
    ast.Mod: (ast.FloorDiv, "%", "//"),
    ast.Pow: (ast.Mult, "**", "*"),
    ast.BitAnd: (ast.BitOr, "&", "|"),
    ast.BitOr: (ast.BitAnd, "|", "&"),
}
CALL_SWAP = {"min": "max", "max": "min", "any": "all", "all": "any"}


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int  # 1-based position in the traversal: what `Mutator(target=index)` applies
    line: int
    text: str  # the original source line, stripped: with `label`, a key that survives line moves
    label: str
    occurrence: int  # the n-th identical (text, label) pair in the module, from 1

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.module, self.text, self.label, self.occurrence)

    def describe(self) -> str:
        return f"{self.module}:{self.line}  {self.label}  |  {self.text}"


class Mutator(ast.NodeTransformer):
    """Counts candidate sites in traversal order; applies the `target`-th one (1-based), if any."""

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.count = 0
        self.sites: list[tuple[int, int, str]] = []  # (index, line, label)

    def _site(self, node: ast.AST, label: str) -> bool:
        self.count += 1
        if self.target is None:
            self.sites.append((self.count, node.lineno, label))
        return self.count == self.target

    # Not mutated: imports, annotations, docstrings and f-strings (messages).
    def visit_Import(self, node: ast.Import) -> ast.AST:
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.args = self.visit(node.args)
        node.body = self._body(node.body)
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self.visit_FunctionDef(node)  # type: ignore[arg-type]

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out = []
        for stmt in body:
            new = self.visit(stmt)
            out.extend(new if isinstance(new, list) else [new])
        return out

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return node  # docstring
        if isinstance(node.value, ast.Call) and self._site(node, "call -> pass"):
            return ast.copy_location(ast.Pass(), node)
        return self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        if self._site(node, "raise -> pass"):
            return ast.copy_location(ast.Pass(), node)
        return self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        for i, op in enumerate(node.ops):
            swap = COMPARE_SWAP.get(type(op))
            if swap and self._site(node, f"{swap[1]} -> {swap[2]}"):
                node.ops[i] = swap[0]()
                return node
        for operand in (node.left, *node.comparators):
            items = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
            for item in items:
                is_text = isinstance(item, ast.Constant) and isinstance(item.value, str)
                if is_text and self._site(item, f"{item.value!r} -> {item.value + '~'!r}"):
                    item.value += "~"
                    return node
        return self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        other, label = (ast.Or, "and -> or") if isinstance(node.op, ast.And) else (ast.And, "or -> and")
        if self._site(node, label):
            node.op = other()
            return node
        return self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, ast.Not) and self._site(node, "not x -> x"):
            return node.operand
        if isinstance(node.op, ast.USub) and self._site(node, "-x -> x"):
            return node.operand
        return self.generic_visit(node)

    def _binop(self, node: ast.BinOp | ast.AugAssign) -> bool:
        swap = BINOP_SWAP.get(type(node.op))
        if swap is None:
            return False
        if isinstance(node, ast.BinOp) and any(
            isinstance(side, ast.JoinedStr)
            or (isinstance(side, ast.Constant) and isinstance(side.value, str))
            for side in (node.left, node.right)
        ):
            return False  # string concatenation of a message
        if self._site(node, f"{swap[1]} -> {swap[2]}"):
            node.op = swap[0]()
            return True
        return False

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        return node if self._binop(node) else self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        return node if self._binop(node) else self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id in CALL_SWAP:
            new = CALL_SWAP[node.func.id]
            if self._site(node, f"{node.func.id}() -> {new}()"):
                node.func = ast.copy_location(ast.Name(id=new, ctx=ast.Load()), node.func)
                return node
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool):
            new: object = not value
        elif isinstance(value, int):
            new = value + 1
        elif isinstance(value, float):
            new = value + 1.0
        else:
            return node
        if self._site(node, f"{value!r} -> {new!r}"):
            return ast.copy_location(ast.Constant(value=new), node)
        return node


def mutants(module: str, source: str) -> list[Mutant]:
    collector = Mutator()
    collector.visit(ast.parse(source))
    lines = source.splitlines()
    seen: Counter[tuple[str, str]] = Counter()
    out = []
    for index, line, label in collector.sites:
        text = lines[line - 1].strip()
        seen[text, label] += 1
        out.append(Mutant(module, index, line, text, label, seen[text, label]))
    return out


def mutated_source(source: str, index: int) -> str:
    tree = ast.parse(source)
    Mutator(target=index).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


def load_equivalents() -> dict[tuple[str, str, str, int], str]:
    """`(module, line text, label, occurrence)` -> its kind ("equivalent" or "immaterial")."""
    data = tomllib.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.is_file() else {}
    out = {}
    for e in data.get("equivalent", []):
        if not e.get("reason"):
            raise SystemExit(f"{EQUIVALENTS}: an entry without a reason: {e}")
        out[e["module"], e["line"], e["mutation"], e.get("occurrence", 1)] = e.get("kind", "equivalent")
    return out


def preload() -> None:
    """Import pytest, its plugins and the heavy libraries once, before any fork."""
    import pytest  # noqa: F401

    for ep in entry_points(group="pytest11"):
        with contextlib.suppress(Exception):  # a broken plugin fails in the child the same way
            ep.load()
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    leaked = [m for m in sys.modules if m.split(".")[0] in PRODUCT]
    if leaked:
        raise SystemExit(f"product modules imported before the fork: {leaked}")


def run_tests(copy: Path, tests: list[str], timeout: float) -> str:
    """Run `tests` in a forked child on the copy: 'passed', 'failed', 'timeout' or 'error:<code>'."""
    pid = os.fork()
    if pid == 0:  # child: never returns
        try:
            os.setpgid(0, 0)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            sys.dont_write_bytecode = True
            os.chdir(copy)
            repo = str(REPO)
            sys.path[:] = [str(copy), *(p for p in sys.path if p not in ("", ".", repo))]
            import pytest

            args = [*tests, "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore"]
            code = pytest.main(args)
            os._exit(int(code))
        except BaseException:
            os._exit(99)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.01)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return "passed"
    if code in (1, 2):  # tests failed, or collection failed because the mutant does not import
        return "failed"
    return f"error:{code}"


def copy_repo(tmp: Path) -> Path:
    copy = tmp / "repo"
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, copy / name, ignore=ignore)
        else:
            shutil.copy2(src, copy / name)
    return copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES), help="repeatable; default: all")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant run (default 60)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args(argv)
    selected = args.module or list(MODULES)
    equivalents = load_equivalents()
    os.environ.setdefault("FORECASTER_SHARED", str(REPO.parent / "shared"))

    if args.list:
        for module in selected:
            for m in mutants(module, (REPO / module).read_text()):
                mark = f"  [{equivalents[m.key]}]" if m.key in equivalents else ""
                print(f"#{m.index:<4}{m.describe()}{mark}")
        return 0

    preload()
    rows, survivors, used = [], [], set()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        copy = copy_repo(Path(tmp))
        for module in selected:
            tests = [t for t in MODULES[module] if (copy / t).exists()]
            target = copy / module
            original = target.read_text()  # the snapshot: edits in the working tree do not leak in
            found = mutants(module, original)
            if not tests:  # nothing can notice a mutant: all survive, not run one by one
                excluded = [m.key for m in found if m.key in equivalents]
                used.update(excluded)
                equivalent = len(excluded)
                rows.append((module, len(found), equivalent, 0, len(found) - equivalent, "no tests mapped"))
                continue
            # Baseline: the unparsed, unmutated module must pass its tests.
            try:
                target.write_text(ast.unparse(ast.parse(original)))
                baseline = run_tests(copy, tests, args.timeout)
            finally:
                target.write_text(original)
            if baseline != "passed":
                rows.append((module, 0, 0, 0, 0, f"baseline {baseline}: fix the tests first"))
                continue
            killed = equivalent = timeouts = 0
            t0 = time.monotonic()
            for m in found:
                if m.key in equivalents:
                    equivalent += 1
                    used.add(m.key)
                    continue
                try:
                    target.write_text(mutated_source(original, m.index))
                    outcome = run_tests(copy, tests, args.timeout)
                finally:
                    target.write_text(original)
                if outcome in ("failed", "timeout"):
                    killed += 1
                    timeouts += outcome == "timeout"
                elif outcome == "passed":
                    survivors.append(m)
                else:
                    survivors.append(m)
                    print(f"  {m.describe()}: {outcome}", file=sys.stderr)
            note = f"{time.monotonic() - t0:.0f} s" + (f", {timeouts} by timeout" if timeouts else "")
            rows.append((module, len(found), equivalent, killed, len(found) - equivalent, note))
            print(f"  done {module}: {killed}/{len(found) - equivalent}", file=sys.stderr, flush=True)

    print(f"\n{'module':<26}{'mutants':>8}{'equiv':>7}{'killed':>14}{'score':>8}  note")
    total_killed = total_scored = 0
    for module, n, eq, killed, scored, note in rows:
        score = f"{100 * killed / scored:.0f}%" if scored else "-"
        print(f"{module:<26}{n:>8}{eq:>7}{f'{killed}/{scored}':>14}{score:>8}  {note}")
        total_killed += killed
        total_scored += scored
    if total_scored:
        overall = f"{total_killed}/{total_scored}"
        print(f"{'overall':<26}{'':>8}{'':>7}{overall:>14}{100 * total_killed / total_scored:>7.0f}%")
    print(f"\n{len(survivors)} survivor(s):")
    for m in survivors:
        print(f"  {m.describe()}")
    kinds = Counter(equivalents[k] for k in used)
    print(
        f"excluded from the score (see {EQUIVALENTS.name}): "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    )
    stale = [k for k in equivalents if k[0] in selected and k not in used]
    for key in stale:
        print(f"  (equivalents list entry matches no mutant: {key})", file=sys.stderr)
    print(f"\n{time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
