"""Code versions computed from the source: a digest of the code that decides what a step computes.

A step's Dagster `code_version` (and the model chain's `code_versions` in its training snapshot, which refits the
chain when it changes: ml/cadence.py rule 4; likewise the clustering fit's) used to be a string bumped by hand, and
six champion-rule changes shipped without a bump: upgraded deployments kept the old rules until the weekly refit,
and Dagster showed "up to date" for segments computed by old code. `source_version` derives it instead from the
step's asset function and the code it reaches:
- in the asset's own module, the asset function (or the factory that makes it) and every top-level definition it
  names, transitively (its helpers, SQL constants, config class, decorator arguments), and nothing else of that
  module (another asset's edit does not count);
- every module of the pure PACKAGES (ml, activation, landing, privacy, realtime, reporting) those definitions import
  names from, whole, and the PACKAGES modules those import, transitively: the pure functions that fit, choose,
  score, select and render. An automatic set, so a new helper module cannot be forgotten the way a bump was. An
  empty module (a package's empty __init__.py) computes nothing and is left out.
Not followed: other orchestration modules (reading, writing, bookkeeping: what they read is the step's input data,
whose data versions Dagster tracks and which the snapshots' measures, feature columns and back-test definition
cover) and third-party libraries (the snapshots' library_versions).

Which assets carry one (ASSET_STEPS, the one table; tests/orchestration/test_definitions.py holds the definitions to
it): every Python asset whose output is data computed from its inputs by its code: the event vocabulary, RFM,
clusters (profiles, the pinned fit), the lookalike and its model, the refit decision, the BTYD and CLV chain and
their predictions, the activation gate, explanations, the fairness audit, the membership history, the segment cards
and report, the serving bundle, the contact match forms, the audience member tables and export files, the audience
lift. A multi-asset's outputs share its step's version; a factory's assets (one per audience) share the factory's,
and an audience's own rule is configuration, shown in its metadata. Without one:
- the ingest (landing_files, raw/*): its data version is the ingest fingerprint, which already hashes the ingest
  code (orchestration/lib/ingest_fingerprint.py) and keys the kept raw tables;
- the syncs (sync/*, the ledger tables): an effect at a destination; what is current there is the ledger's diff,
  and a code edit does not make a pushed audience stale (nor should Dagster say so);
- the privacy steps (privacy/*): records of actions taken (receipts, owed removals, compaction), not derivations;
- dbt assets: dagster-dbt gives them the SQL's checksum.
The match forms keep their own row key besides (activation/member_records.py forms_version, from the rules' source).

Normalised so an edit that cannot change a computation does not refit: each source is parsed and hashed as
`ast.dump` (no line numbers) with bare string statements (docstrings) removed, so comments, formatting and
docstrings vanish. Sources are named by module, not path, so the digest is the same on every machine, checkout
path and PYTHONHASHSEED. The dump format belongs to the Python minor version: a Python upgrade refits once.

Computed once per process at definitions load (asset_code_versions): 56 files, 0.44-0.51 s of CPU (the chain's
three steps alone took 0.19-0.21 s; a definitions load ~5 s), with the garbage collector paused (a third of the
cost was its passes over the syntax trees) and the trees freed afterwards (~36 MB; main kept 10 MB of them for the
whole run). Not cached on disk: a cache file written at import would be a side effect for ~5 % of the load.
"""

from __future__ import annotations

import ast
import functools
import gc
import hashlib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# The pure packages whose modules count whole: the code that computes (STYLE: orchestration imports them, never the
# reverse). Not `expectations` (asset checks, not assets) nor `orchestration` (reading, writing, bookkeeping).
PACKAGES = ("ml", "activation", "landing", "privacy", "realtime", "reporting")


def module_path(module: str, root: Path = PROJECT_ROOT) -> Path:
    """The source file of a project module ("ml.champion" -> <root>/ml/champion.py), without importing it."""
    path = root.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


# The fields that hold statement lists (of a statement, an except handler or a match case): docstrings and imports
# are statements, and a statement never sits inside an expression, so walking these reaches every one of them
# without visiting the expressions (most of a tree's nodes).
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


def _is_bare_string(stmt: ast.AST) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _without_strings(stmts: list) -> list:
    """The statements without bare string statements (docstrings: they compute nothing), at every depth."""
    kept = [stmt for stmt in stmts if not _is_bare_string(stmt)]
    for stmt in kept:
        for field in _BLOCKS:
            if isinstance(block := getattr(stmt, field, None), list):
                setattr(stmt, field, _without_strings(block))
    return kept


def _statements(stmts: list):
    """Every statement of a statement list, nested ones included."""
    for stmt in stmts:
        yield stmt
        for field in _BLOCKS:
            if isinstance(block := getattr(stmt, field, None), list):
                yield from _statements(block)


def parse_module(module: str, root: Path = PROJECT_ROOT) -> ast.Module:
    """The module's syntax tree without docstrings (shared: callers must not change it)."""
    return _parsed(module_path(module, root).read_text(encoding="utf-8"))


def module_dump(module: str, root: Path = PROJECT_ROOT) -> str:
    return _dumped(module_path(module, root).read_text(encoding="utf-8"))


@functools.cache
def _parsed(source: str) -> ast.Module:
    # by the text, not the path: parsed once per process however many steps read it, never stale
    tree = ast.parse(source)
    tree.body = _without_strings(tree.body)
    return tree


@functools.cache
def _dumped(source: str) -> str:
    return ast.dump(_parsed(source))


def _package_module(name: str | None, level: int, module: str) -> str | None:
    """The absolute module an import names (relative imports resolved against `module`), None outside PACKAGES."""
    if level:
        base = module.split(".")[:-level]
        name = ".".join(base + ([name] if name else []))
    if name and name.split(".")[0] in PACKAGES:
        return name
    return None


def imported_package_modules(tree: ast.Module, module: str, root: Path = PROJECT_ROOT) -> set[str]:
    """The PACKAGES modules a module imports anywhere in its source (top level or inside a function); an empty
    module (ml/__init__.py) computes nothing and is left out."""
    found = set()
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_package_module(alias.name, 0, module) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom) and (target := _package_module(node.module, node.level, module)):
            # `from ml import btyd` imports a module; `from ml.btyd import X` a name of one
            found.update(
                f"{target}.{alias.name}" if module_path(f"{target}.{alias.name}", root).exists() else target
                for alias in node.names
            )
    return {name for name in found if parse_module(name, root).body}


def _module_imports(module: str, root: Path) -> frozenset[str]:
    return _imports_of(module_path(module, root).read_text(encoding="utf-8"), module, root)


@functools.cache
def _imports_of(source: str, module: str, root: Path) -> frozenset[str]:
    # by the text, as _parsed: once per module however many steps reach it, never stale
    return frozenset(imported_package_modules(_parsed(source), module, root))


def package_closure(modules: set[str], root: Path = PROJECT_ROOT) -> set[str]:
    """The PACKAGES modules given and every PACKAGES module they import, transitively."""
    closure: set[str] = set()
    todo = sorted(modules)
    while todo:
        module = todo.pop()
        if module not in closure:
            closure.add(module)
            todo.extend(_module_imports(module, root) - closure)
    return closure


def _top_level_names(stmt: ast.stmt) -> list[str]:
    """The names a top-level statement binds (def, class, assignment targets)."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [stmt.name]
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    else:
        return []
    return [node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)]


def reachable_definitions(tree: ast.Module, name: str) -> dict[str, list[ast.stmt]]:
    """The top-level statements of a module that `name`'s definition reaches through the names it uses (every
    statement that binds a reached name: `X = ...` then `X += ...` are both part of X)."""
    definitions: dict[str, list[ast.stmt]] = {}
    for stmt in tree.body:
        for bound in _top_level_names(stmt):
            definitions.setdefault(bound, []).append(stmt)
    reached: dict[str, list[ast.stmt]] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in reached or current not in definitions:
            continue
        reached[current] = definitions[current]
        todo.extend(node.id for stmt in reached[current] for node in ast.walk(stmt) if isinstance(node, ast.Name))
    return reached


def step_sources(module: str, function: str, root: Path = PROJECT_ROOT) -> dict[str, str]:
    """What a step's code version covers, normalised: "<module>:<name>" -> each definition of the asset's module that
    `function` reaches, and "<module>" -> each PACKAGES module those import names from, transitively."""
    tree = parse_module(module, root)
    reached = reachable_definitions(tree, function)
    if function not in reached:
        raise ValueError(f"{module} defines no top-level {function!r}")
    statements = [stmt for stmts in reached.values() for stmt in stmts]
    used = {node.id for stmt in statements for node in ast.walk(stmt) if isinstance(node, ast.Name)}
    imports = [  # one import per name the definitions use, so `from ml import btyd, clv` counts only what is used
        ast.ImportFrom(node.module, [alias], node.level) if isinstance(node, ast.ImportFrom) else ast.Import([alias])
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if (alias.asname or alias.name).split(".")[0] in used
    ]
    # with the imports inside the reached definitions (a function that imports an ml module when it runs)
    package = package_closure(imported_package_modules(ast.Module(imports + statements, []), module, root), root)
    return {f"{module}:{name}": "\n".join(ast.dump(stmt) for stmt in stmts) for name, stmts in reached.items()} | {
        name: module_dump(name, root) for name in package
    }


def source_digest(module: str, function: str, root: Path = PROJECT_ROOT) -> str:
    """sha256 (12 hex) of step_sources."""
    digest = hashlib.sha256()
    for name, source in sorted(step_sources(module, function, root).items()):
        digest.update(f"{name}\n{source}\0".encode())
    return digest.hexdigest()[:12]


def source_version(prefix: str, module: str, function: str, root: Path = PROJECT_ROOT) -> str:
    """`<prefix>-<source_digest>`: the readable name of the step, then the digest of its code."""
    return f"{prefix}-{source_digest(module, function, root)}"


# Every Python asset that computes data, by step: (readable prefix, module, the asset function or the factory that
# makes the asset). A multi-asset's outputs share its step's version; a factory's assets (one per audience) share the
# factory's. Which assets are here and which are not: the module docstring.
ASSET_STEPS = {
    "event_vocabulary": ("event-vocabulary", "orchestration.defs.vocabulary", "event_vocabulary"),
    "rfm_segments": ("rfm", "orchestration.defs.segments", "rfm_segments"),
    "behavioral_segments": ("clusters", "orchestration.defs.segments", "behavioral_segments"),
    "prospect_scores": ("lookalike", "orchestration.defs.segments", "prospect_scores"),
    "model_refit_decision": ("model-refit-decision", "orchestration.defs.btyd", "model_refit_decision"),
    "btyd_models": ("btyd-models", "orchestration.defs.btyd", "btyd_models"),
    "btyd_predictions": ("btyd-predictions", "orchestration.defs.btyd", "btyd_predictions"),
    "clv_model_evaluation": ("clv-champion", "orchestration.defs.clv", "clv_model_evaluation"),
    "clv_model": ("clv-model", "orchestration.defs.clv", "clv_model"),
    "clv_activation_gate": ("clv-activation-gate", "orchestration.defs.clv", "clv_activation_gate"),
    "clv_predictions": ("clv-predict", "orchestration.defs.clv", "clv_predictions"),
    "explanation_texts": ("explanations", "orchestration.defs.explanations", "explanation_texts"),
    "fairness_audit": ("fairness-audit", "orchestration.defs.fairness", "fairness_audit"),
    "segment_membership_history": ("membership-history", "orchestration.defs.membership", "segment_membership_history"),
    "segment_cards": ("segment-cards", "orchestration.defs.reporting", "segment_cards"),
    "serving_bundle": ("serving-bundle", "orchestration.defs.realtime", "serving_bundle"),
    "customer_match_forms": ("match-forms", "orchestration.defs.audiences", "customer_match_forms"),
    "audience_members": ("audience", "orchestration.defs.audiences", "_audience_asset"),
    "audience_exports": ("audience-export", "orchestration.defs.audiences", "_export_asset"),
    "audience_lift": ("audience-lift", "orchestration.defs.audiences", "audience_lift"),
}


@functools.cache
def asset_code_versions(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Step of ASSET_STEPS -> its code version ("rfm-<12 hex>"): the one place every computed version comes from,
    computed once per process at definitions load. `root`: the sources to read (tests use copies)."""
    collecting = gc.isenabled()
    # Parsing makes ~130 k syntax-tree nodes (56 files), none in a reference cycle: the collector's passes over them
    # were a third of this function's CPU.
    gc.disable()
    try:
        return {step: source_version(*where, root=root) for step, where in ASSET_STEPS.items()}
    finally:
        if collecting:
            gc.enable()
        # The trees (~36 MB for every step) are not needed once the versions are known: not kept for the whole run.
        for cached in (_parsed, _dumped, _imports_of):
            cached.cache_clear()
